public import Formats

extension VerifyReport {
    /// The report as JSON, with the schema documented in docs/verify.md. Non-finite numbers
    /// (the SNR of identical tensors, statistics of an empty sample) are written as null so the
    /// output is strict JSON.
    public func json() -> JSONValue {
        let s = logits
        func number(_ x: Double) -> JSONValue { x.isFinite ? .double(x) : .null }
        func optional(_ x: Double?) -> JSONValue { x.map(number) ?? .null }
        func string(_ x: String?) -> JSONValue { x.map { .string($0) } ?? .null }
        var root = JSONObject()
        root["reference"] = string(referencePath)
        root["candidate"] = .string(candidatePath)
        root["baseline"] = string(baselinePath)
        root["context_length"] = .int(Int64(contextLength))
        root["tokens"] = .int(Int64(tokenCount))
        root["chunks"] = .int(Int64(chunkCount))
        root["tokens_scored"] = .int(Int64(s.count))
        root["mean_kld"] = number(s.meanKLD.value)
        root["mean_kld_uncertainty"] = number(s.meanKLD.uncertainty)
        root["median_kld"] = number(s.kld.median)
        root["p90_kld"] = number(s.kld.percentile(0.90))
        root["p99_kld"] = number(s.kld.percentile(0.99))
        root["max_kld"] = number(s.kld.maximum)
        root["top1_agreement"] = number(s.sameTop.value)
        root["top1_agreement_uncertainty"] = number(s.sameTop.uncertainty)
        root["ppl_ref"] = number(s.basePerplexity.value)
        root["ppl_cand"] = number(s.candidatePerplexity.value)
        root["ppl_ratio"] = number(s.perplexityRatio.value)
        root["ppl_ratio_uncertainty"] = number(s.perplexityRatio.uncertainty)
        root["ln_ppl_ratio"] = number(s.logPerplexityRatio.value)
        root["nll_correlation"] = number(s.nllCorrelation)
        root["mean_delta_p"] = number(s.meanDeltaP.value)
        root["rms_delta_p"] = number(s.rmsDeltaP.value)
        root["layers"] = .array(layers.map { l in
            .object(JSONObject([
                ("name", .string(l.name)),
                ("layer", l.layer.map { .int(Int64($0)) } ?? .null),
                ("cosine", number(l.difference.cosine)),
                ("relative_error", number(l.difference.relativeError)),
                ("rmse", number(l.difference.rmse)),
                ("max_abs_diff", number(l.difference.maxAbsDifference)),
                ("diverges", .bool(l.diverges)),
            ]))
        })
        root["first_divergent_layer"] = string(firstDivergentLayer?.name)
        root["layer_tolerance"] = number(layerTolerance)
        root["tensors"] = .array(tensors.map { t in
            var o = JSONObject()
            o["name"] = .string(t.name)
            o["reference_name"] = .string(t.referenceName)
            o["candidate_name"] = .string(t.candidateName)
            o["reference_type"] = .string(t.referenceType)
            o["candidate_type"] = .string(t.candidateType)
            o["shape"] = .array(t.shape.map { .int(Int64($0)) })
            if let d = t.difference {
                o["rmse"] = number(d.rmse)
                o["max_abs_diff"] = number(d.maxAbsDifference)
                o["cosine"] = number(d.cosine)
                o["snr_db"] = number(d.snrDecibels)
                o["relative_error"] = number(d.relativeError)
            } else {
                o["candidate_shape"] = .array((t.candidateShape ?? []).map { .int(Int64($0)) })
            }
            return .object(o)
        })
        root["tensors_only_in_reference"] = .array(tensorsOnlyInReference.map { .string($0) })
        root["tensors_only_in_candidate"] = .array(tensorsOnlyInCandidate.map { .string($0) })
        root["thresholds"] = .object(JSONObject([
            ("max_kld", optional(thresholds.maxMeanKLD)),
            ("min_top1", optional(thresholds.minTop1Agreement)),
            ("max_ppl_ratio", optional(thresholds.maxPerplexityRatio)),
        ]))
        root["passed"] = .bool(passed)
        root["failures"] = .array(failures.map { .string($0) })
        root["notes"] = .array(notes.map { .string($0) })
        root["seconds"] = .object(JSONObject([("tensors", number(tensorSeconds)), ("evaluation", number(evaluationSeconds))]))
        return .object(root)
    }

    /// The human-readable report: logit statistics, the layer table, the worst tensors, the verdict.
    /// - Parameter tensorRows: how many tensors to list (the lowest SNR first); the JSON has all.
    public func table(tensorRows: Int = 12) -> String {
        let s = logits
        let f: (Double) -> String = { VerifyReport.format($0) }
        func percent(_ x: Double) -> String { f(x * 100) + " %" }
        // Cosines of close tensors differ from 1 in the fifth digit or later.
        func cosine(_ x: Double) -> String { VerifyReport.format(x, significant: 7) }
        var lines: [String] = []
        lines.append("reference: \(referencePath ?? "-")\(baselinePath.map { " (baseline \($0))" } ?? "")")
        lines.append("candidate: \(candidatePath)")
        lines.append("text: \(tokenCount) tokens, \(chunkCount) chunks of \(contextLength), \(s.count) positions scored")
        lines.append("")
        var rows: [[String]] = [["logits", "value", "±"]]
        rows.append(["mean KLD", f(s.meanKLD.value), f(s.meanKLD.uncertainty)])
        rows.append(["median KLD", f(s.kld.median), ""])
        rows.append(["99 % KLD", f(s.kld.percentile(0.99)), ""])
        rows.append(["max KLD", f(s.kld.maximum), ""])
        rows.append(["top-1 agreement", percent(s.sameTop.value), percent(s.sameTop.uncertainty)])
        rows.append(["PPL reference", f(s.basePerplexity.value), f(s.basePerplexity.uncertainty)])
        rows.append(["PPL candidate", f(s.candidatePerplexity.value), f(s.candidatePerplexity.uncertainty)])
        rows.append(["PPL ratio", f(s.perplexityRatio.value), f(s.perplexityRatio.uncertainty)])
        rows.append(["mean Δp", percent(s.meanDeltaP.value), percent(s.meanDeltaP.uncertainty)])
        rows.append(["RMS Δp", percent(s.rmsDeltaP.value), percent(s.rmsDeltaP.uncertainty)])
        lines += Self.align(rows)
        if !layers.isEmpty {
            lines.append("")
            var layerRows: [[String]] = [["hidden states", "cosine", "rel. error", "max |Δ|", ""]]
            for l in layers {
                layerRows.append([l.name, cosine(l.difference.cosine), f(l.difference.relativeError),
                                  f(l.difference.maxAbsDifference), l.diverges ? "diverges" : ""])
            }
            lines += Self.align(layerRows)
            if let first = firstDivergentLayer {
                lines.append("first divergent layer: \(first.name) (relative error \(f(first.difference.relativeError)) > \(f(layerTolerance)))")
            } else {
                lines.append("no layer diverges (every relative error ≤ \(f(layerTolerance)))")
            }
        }
        if !tensors.isEmpty {
            lines.append("")
            let ranked = tensors.sorted { a, b in
                (a.difference?.snrDecibels ?? -.infinity, a.name) < (b.difference?.snrDecibels ?? -.infinity, b.name)
            }
            let identical = tensors.filter { $0.difference?.maxAbsDifference == 0 }.count
            // Identical tensors say nothing beyond the count.
            let shown = ranked.filter { $0.difference?.maxAbsDifference != 0 }.prefix(tensorRows)
            let differing = tensors.count - identical
            lines.append("tensors: \(tensors.count) compared, \(identical) identical"
                + (shown.isEmpty ? "" : differing > shown.count ? "; the \(shown.count) lowest SNR:" : ":"))
            var tensorRowsText: [[String]] = [["name", "ref", "cand", "rmse", "max |Δ|", "cosine", "SNR dB"]]
            if shown.isEmpty { tensorRowsText = [] }
            for t in shown {
                if let d = t.difference {
                    tensorRowsText.append([t.name, t.referenceType, t.candidateType, f(d.rmse), f(d.maxAbsDifference),
                                           cosine(d.cosine), d.snrDecibels.isFinite ? f(d.snrDecibels) : "identical"])
                } else {
                    tensorRowsText.append([t.name, t.referenceType, t.candidateType, "shape \(t.shape) vs \(t.candidateShape ?? [])", "", "", ""])
                }
            }
            lines += Self.align(tensorRowsText)
        }
        if !tensorsOnlyInReference.isEmpty { lines.append("only in the reference: " + tensorsOnlyInReference.joined(separator: ", ")) }
        if !tensorsOnlyInCandidate.isEmpty { lines.append("only in the candidate: " + tensorsOnlyInCandidate.joined(separator: ", ")) }
        for note in notes { lines.append("note: \(note)") }
        lines.append("")
        if thresholds.isEmpty {
            lines.append("verdict: no thresholds given (--max-kld, --min-top1, --max-ppl-ratio)")
        } else if passed {
            lines.append("verdict: PASS")
        } else {
            lines.append("verdict: FAIL: " + failures.joined(separator: "; "))
        }
        return lines.joined(separator: "\n")
    }

    /// Left-aligned first column, right-aligned numbers.
    static func align(_ rows: [[String]]) -> [String] {
        let columns = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in rows {
            for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        return rows.map { row in
            var line = ""
            for (i, cell) in row.enumerated() {
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                line += i == 0 ? cell + pad : "  " + pad + cell
            }
            while line.hasSuffix(" ") { line.removeLast() }
            return "  " + line
        }
    }
}
