# The two set-up commands of the README: `make demo` and `make test`. Both install the Debian
# packages they need first, so they work on a fresh machine.
SWIFT ?= swift
WCONV := .build/release/wconv
DEMO_OUT := out/demo

.PHONY: deps build demo test interop bench clean

deps:
	@scripts/install-deps.sh

build: deps
	$(SWIFT) build -c release --product wconv

# The main job on the bundled tiny models: HF directory -> GGUF, inspect it, back to HF, NF4,
# Q4_K_M, and verify the quantized model against the original as a release gate would.
demo: build
	@rm -rf $(DEMO_OUT) && mkdir -p $(DEMO_OUT)
	$(WCONV) convert testdata/tiny-llama-spm -o $(DEMO_OUT)/tiny-llama-spm.f16.gguf --outtype f16
	$(WCONV) inspect $(DEMO_OUT)/tiny-llama-spm.f16.gguf
	$(WCONV) convert $(DEMO_OUT)/tiny-llama-spm.f16.gguf -o $(DEMO_OUT)/tiny-llama-spm-hf
	$(WCONV) inspect $(DEMO_OUT)/tiny-llama-spm-hf
	$(WCONV) quantize testdata/tiny-llama-spm -o $(DEMO_OUT)/tiny-llama-spm-nf4 --nf4
	$(WCONV) inspect $(DEMO_OUT)/tiny-llama-spm-nf4 | tail -n 12
	$(WCONV) quantize testdata/tiny-llama-256 -o $(DEMO_OUT)/tiny-llama-256.Q4_K_M.gguf --type Q4_K_M
	$(WCONV) verify testdata/tiny-llama-256 $(DEMO_OUT)/tiny-llama-256.Q4_K_M.gguf --ctx 128 --max-kld 0.5 --json $(DEMO_OUT)/verify.json

# The whole Swift test suite (needs no Python).
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

# Loads what wconv writes in the Python reference tools (cached virtual environment).
interop: build
	WCONV=$(WCONV) scripts/interop.sh

bench: build
	bench/run.sh

clean:
	rm -rf .build out
