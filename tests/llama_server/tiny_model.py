"""A tiny llama-architecture GGUF for wire tests against llama.cpp's llama-server.

No model hub is reachable here, so the tests write their own model with the `gguf` package: 2 layers,
hidden size 64, a byte-level BPE vocabulary (the 256 GPT-2 byte tokens, so any UTF-8 text can be
spelled, plus merges learned from the judge's prompts and reply shapes, so calls take few tokens) and a
ChatML chat template. The weights are random from a fixed seed, with one twist so that replies shaped
by a grammar end soon: the residual stream carries a constant first dimension that the output layer
turns into a per-token logit bias, towards `"`, `]`, digits and longer tokens, away from whitespace.
Strings then close at once, lists end, keys take a token or two, and every score token has digits
among its top logprobs; the rest of each logit is random and depends on the context. Unconstrained,
the model never stops by itself.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import gguf
import numpy as np

SEED = 20261201
N_EMBD = 64
N_HEAD = 4
N_FF = 128
N_LAYER = 2
CONTEXT_LENGTH = 65536
MERGES = 600
SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Logit offsets (roughly in units of the random part's standard deviation) that make replies end.
BIAS = {'"': 10.0, "]": 6.0, "`": -10.0, **{str(d): 5.0 for d in range(10)}}
CONSTANT, BIAS_SCALE = 8.0, 0.3
LENGTH_BIAS = 0.3  # the longest token a grammar allows wins, so replies take few tokens
WHITESPACE_BIAS = -10.0  # tokens of whitespace only, which JSON grammars allow almost anywhere
# The judge's reply shapes, so that a reply's keys and punctuation are single tokens. Only `true`
# appears, so that it is a longer token than any spelling of `false` and most verdicts are scored.
REPLIES = "".join(
    f'{{"turn_{turn}":{{"criterion":{{"rationale":"","evidence":[""],"applicable":true,"score":{turn % 10}}}}}}}\n'
    for turn in range(40)
)
# GPT-2's split of text into words before merging; llama.cpp applies the same with its "gpt-2" pre-tokenizer.
WORDS = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""")


def byte_chars() -> list[str]:
    """GPT-2's printable stand-in for each byte value, as byte-level BPE vocabularies spell them."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def learn_merges(corpus: str, count: int) -> list[tuple[str, str]]:
    """Byte-level BPE merges, most frequent pair first (ties broken by the pair, so the result is fixed);
    pair counts are updated only for the words a merge touches, so this takes well under a second."""
    spell = byte_chars()
    freq = Counter("".join(spell[b] for b in word.encode()) for word in WORDS.findall(corpus))
    words = [list(word) for word in freq]
    weights = list(freq.values())
    pairs: Counter[tuple[str, str]] = Counter()
    where: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
    for index, symbols in enumerate(words):
        for pair in zip(symbols, symbols[1:]):
            pairs[pair] += weights[index]
            where[pair].add(index)
    merges: list[tuple[str, str]] = []
    while len(merges) < count and pairs:
        best = max(pairs.items(), key=lambda item: (item[1], item[0]))[0]
        if pairs[best] < 2:
            break
        merges.append(best)
        for index in where.pop(best):
            symbols = words[index]
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] -= weights[index]
                if pairs[pair] <= 0:
                    del pairs[pair]
            words[index] = symbols = _merge(symbols, best)
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += weights[index]
                where[pair].add(index)
    return merges


def _merge(symbols: list[str], pair: tuple[str, str]) -> list[str]:
    merged, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            merged.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return merged


def vocabulary(corpus: str) -> tuple[list[str], list[str]]:
    """Tokens (bytes, merged tokens, then the specials) and merges in GGUF's "left right" form."""
    merges = learn_merges(corpus + REPLIES, MERGES)
    tokens = byte_chars()
    known = set(tokens)
    for left, right in merges:
        if left + right not in known:
            known.add(left + right)
            tokens.append(left + right)
    return tokens + list(SPECIALS), [f"{left} {right}" for left, right in merges]


def weights(tokens: list[str], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random weights, shaped as numpy (out, in); dimension 0 of the residual stream is a constant that
    no layer writes to, and column 0 of the output layer turns it into the per-token bias."""
    n_vocab = len(tokens)
    spell = byte_chars()
    byte_of = {char: chr(byte) for byte, char in enumerate(spell)}

    def normal(*shape: int, std: float) -> np.ndarray:
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    embedding = normal(n_vocab, N_EMBD, std=1.0)
    embedding[:, 0] = CONSTANT
    output = normal(n_vocab, N_EMBD, std=0.12)
    output[:, 0] = 0.0
    for index, token in enumerate(tokens):
        text = "".join(byte_of.get(char, char) for char in token)
        if text.isspace():
            output[index, 0] = BIAS_SCALE * WHITESPACE_BIAS
        elif token not in SPECIALS:
            output[index, 0] = BIAS_SCALE * LENGTH_BIAS * len(text)
    for text, bias in BIAS.items():
        output[tokens.index(spell[ord(text)]), 0] = BIAS_SCALE * bias
    tensors = {
        "token_embd.weight": embedding,
        "output_norm.weight": np.ones(N_EMBD, np.float32),
        "output.weight": output,
    }
    scale = 1.0 / np.sqrt(N_EMBD)
    for layer in range(N_LAYER):
        blk = f"blk.{layer}"
        tensors[f"{blk}.attn_norm.weight"] = np.ones(N_EMBD, np.float32)
        tensors[f"{blk}.ffn_norm.weight"] = np.ones(N_EMBD, np.float32)
        for name in ("attn_q", "attn_k", "attn_v"):
            tensors[f"{blk}.{name}.weight"] = normal(N_EMBD, N_EMBD, std=scale * 2)
        attn_output = normal(N_EMBD, N_EMBD, std=scale * 2)
        attn_output[0] = 0.0
        tensors[f"{blk}.attn_output.weight"] = attn_output
        tensors[f"{blk}.ffn_gate.weight"] = normal(N_FF, N_EMBD, std=scale)
        tensors[f"{blk}.ffn_up.weight"] = normal(N_FF, N_EMBD, std=scale)
        ffn_down = normal(N_EMBD, N_FF, std=1.0 / np.sqrt(N_FF))
        ffn_down[0] = 0.0
        tensors[f"{blk}.ffn_down.weight"] = ffn_down
    return tensors


def write_tiny_model(path: Path, corpus: str, seed: int = SEED) -> Path:
    """Write the model to `path`; the same corpus and seed give the same file."""
    tokens, merges = vocabulary(corpus)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("therapist-evaluator tiny test model")
    writer.add_context_length(CONTEXT_LENGTH)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokens.index("<|endoftext|>"))
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_eot_token_id(tokens.index("<|im_end|>"))
    writer.add_pad_token_id(tokens.index("<|endoftext|>"))
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML)
    for name, tensor in weights(tokens, np.random.default_rng(seed)).items():
        writer.add_tensor(name, tensor if tensor.ndim == 1 else tensor.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
