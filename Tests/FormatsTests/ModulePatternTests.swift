import Formats
import Testing

/// ``ModulePattern/backtrackingRisk(_:)``: the module-name regexes of adapter configs that could
/// hang a backtracking matcher are refused; the patterns real PEFT configs use pass.
@Suite struct ModulePatternTests {
    @Test(arguments: [
        "q_proj", "model.layers.1.self_attn.v_proj", ".*\\.(q_proj|k_proj|v_proj|up_proj|down_proj)",
        "layers.1.self_attn.v_proj", "^(?!.*lm_head).*$", ".*layers\\.(0|1|2)\\..*(q|v)_proj",
        "[a-z_]+\\.[0-9]+", "(?:q|k|v)_proj", "a{2,3}", "(ab){3}", "[(*]+x", "\\(.*\\)",
    ])
    func realPatternsPass(_ pattern: String) {
        #expect(ModulePattern.backtrackingRisk(pattern) == nil, "\(pattern)")
    }

    @Test(arguments: [
        "(.*)*", "la(.*)*1.sef_alttn.v_proj", "(a+)+b", "(a|aa)*c", "((ab)*c)+", "(.*\\.){2,}x",
        "(?:x*y)+", ".*.*.*.*.*z", "(a*)*?",
    ])
    func nestedRepetitionIsRefused(_ pattern: String) {
        #expect(ModulePattern.backtrackingRisk(pattern) != nil, "\(pattern)")
    }

    @Test func longPatternIsRefused() {
        #expect(ModulePattern.backtrackingRisk(String(repeating: "a", count: 2000)) != nil)
    }
}
