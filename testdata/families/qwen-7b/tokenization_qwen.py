"""Stand-in for Qwen-7B's QWenTokenizer (wconv test fixture; not Qwen's code).

Reads qwen.tiktoken (base64 token bytes + rank per line, as Qwen ships it) and provides the
attributes llama.cpp's convert_hf_to_gguf.py reads: mergeable_ranks, special_tokens, get_vocab().
Encoding is a plain byte-level BPE by rank; there is no regex pre-split.
"""
import base64

from transformers import PreTrainedTokenizer

SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


class QWenTokenizer(PreTrainedTokenizer):
    vocab_files_names = {"vocab_file": "qwen.tiktoken"}

    def __init__(self, vocab_file, **kwargs):
        self.mergeable_ranks = {}
        with open(vocab_file, "rb") as f:
            for line in f.read().splitlines():
                if line:
                    tok, rank = line.split()
                    self.mergeable_ranks[base64.b64decode(tok)] = int(rank)
        n = len(self.mergeable_ranks)
        self.special_tokens = {s: n + i for i, s in enumerate(SPECIALS)}
        self._id_to_bytes = {r: t for t, r in self.mergeable_ranks.items()}
        super().__init__(**kwargs)

    @property
    def vocab_size(self):
        return len(self.mergeable_ranks) + len(self.special_tokens)

    def get_vocab(self):
        v = {t: r for t, r in self.mergeable_ranks.items()}
        v.update(self.special_tokens)
        return v

    def _bpe(self, piece):
        parts = [bytes([b]) for b in piece]
        while len(parts) > 1:
            best = None
            for i in range(len(parts) - 1):
                r = self.mergeable_ranks.get(parts[i] + parts[i + 1])
                if r is not None and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            i = best[1]
            parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
        return parts

    def _tokenize(self, text, **kwargs):
        return self._bpe(text.encode("utf-8"))

    def _convert_token_to_id(self, token):
        if isinstance(token, str):
            return self.special_tokens.get(token, self.mergeable_ranks.get(token.encode("utf-8")))
        return self.mergeable_ranks[token]

    def _convert_id_to_token(self, index):
        for s, i in self.special_tokens.items():
            if i == index:
                return s
        return self._id_to_bytes[index]

    def convert_tokens_to_string(self, tokens):
        out = b""
        for t in tokens:
            out += t if isinstance(t, bytes) else t.encode("utf-8")
        return out.decode("utf-8", errors="replace")

    def save_vocabulary(self, save_directory, filename_prefix=None):
        return ()
