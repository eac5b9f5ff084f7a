"""Tokenizer and chat format of the demo model.

A SentencePiece BPE model with byte fallback, trained on the synthetic corpus. Settings are chosen
so that llama.cpp's SentencePiece tokenizer gives exactly the same ids as this file (checked by
tests/demo): no dummy space prefix, no whitespace clean-up, no normalisation, and BPE rather than
unigram (llama.cpp merges pieces by score, which is BPE's rule, not unigram's Viterbi search).
"""

from __future__ import annotations

import io
from pathlib import Path

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2          # SentencePiece's <unk>, <s>, </s>
SPECIALS = (IM_START, IM_END)             # control pieces right after </s>: ids 3 and 4
IM_START_ID, IM_END_ID = 3, 4

# ChatML with a BOS in front. llama-cpp-python renders the template and tokenizes the result with
# special tokens parsed and no BOS of its own, so the template writes it. Newlines are written as
# string literals because llama-cpp-python renders with trim_blocks/lstrip_blocks.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def train_sentencepiece(corpus: list[str], vocab_size: int) -> bytes:
    """Train the BPE model on ``corpus`` and return the serialized ``tokenizer.model``.

    One thread and no input sampling or shuffling, so the result is the same bytes every time.
    """
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=buffer, model_type="bpe", vocab_size=vocab_size,
        byte_fallback=True, character_coverage=1.0, split_digits=True,
        add_dummy_prefix=False, remove_extra_whitespaces=False, normalization_rule_name="identity",
        unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID, pad_id=-1, control_symbols=list(SPECIALS),
        num_threads=1, input_sentence_size=0, shuffle_input_sentence=False, minloglevel=2,
    )
    return buffer.getvalue()


class ChatTokenizer:
    """Encodes chats the way llama.cpp tokenizes the rendered chat template."""

    def __init__(self, model_bytes: bytes):
        import sentencepiece as spm

        self.model_bytes = model_bytes
        self.sp = spm.SentencePieceProcessor(model_proto=model_bytes)
        assert self.sp.piece_to_id(IM_START) == IM_START_ID and self.sp.piece_to_id(IM_END) == IM_END_ID

    @classmethod
    def from_file(cls, path: Path) -> "ChatTokenizer":
        return cls(Path(path).read_bytes())

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode_text(self, text: str) -> list[int]:
        """Plain text between special tokens (llama.cpp: one raw-text fragment)."""
        return list(self.sp.encode(text)) if text else []

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode([i for i in ids if i not in (BOS_ID, EOS_ID, IM_START_ID, IM_END_ID)])

    def encode_chat(self, messages: list[dict], add_generation_prompt: bool = False) -> tuple[list[int], list[int]]:
        """Token ids of the rendered chat template, and a 0/1 mask marking what the model must learn
        to write: each assistant answer and the <|im_end|> that closes it."""
        ids, learn = [BOS_ID], [0]
        for message in messages:
            head = self.encode_text(message["role"] + "\n")
            body = self.encode_text(message["role"] + "\n" + message["content"])
            # The role line and the content form one fragment; the split point must be a token boundary.
            if body[: len(head)] != head:
                raise ValueError(f"role prefix does not end on a token boundary: {message!r}")
            trains = 1 if message["role"] == "assistant" else 0
            ids += [IM_START_ID] + body + [IM_END_ID]
            learn += [0] * (1 + len(head)) + [trains] * (len(body) - len(head)) + [trains]
            newline = self.encode_text("\n")
            ids += newline
            learn += [0] * len(newline)
        if add_generation_prompt:
            prompt = [IM_START_ID] + self.encode_text("assistant\n")
            ids += prompt
            learn += [0] * len(prompt)
        return ids, learn

    def gguf_vocab(self) -> tuple[list[bytes], list[float], list[int]]:
        """Pieces, scores and token types for GGUF ``tokenizer.ggml.*`` (llama.cpp's type numbers,
        which are SentencePiece's: 1 normal, 2 unknown, 3 control, 5 unused, 6 byte)."""
        sp = self.sp
        pieces, scores, types = [], [], []
        for i in range(sp.get_piece_size()):
            pieces.append(sp.id_to_piece(i).encode("utf-8"))
            scores.append(float(sp.get_score(i)))
            kind = (2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i)
                    else 5 if sp.is_unused(i) else 1)
            types.append(kind)
        return pieces, scores, types
