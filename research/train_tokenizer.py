"""Train the byte-level BPE tokenizer (vocab 8192) on the train split of ../shared/corpus.

CPU work: run it on the development machine and ship the resulting tokenizer.json with the GPU call.
    python3 research/train_tokenizer.py --corpus ../shared/corpus/train --out .data/tokenizer.json

Special tokens: id 0 `<|endoftext|>` (EOS, also the separator between books in training),
id 1 `<s>` (BOS: the learnable sink token of the `-sink` model; unused by the vanilla model).
"""
import argparse, glob, lzma, os
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, processors

SPECIALS = ["<|endoftext|>", "<s>"]
EOS_ID, BOS_ID = 0, 1


def read_books(pattern):
    for f in sorted(glob.glob(pattern)):
        with (lzma.open(f, "rt", encoding="utf-8") if f.endswith(".xz") else open(f, encoding="utf-8")) as fh:
            yield fh.read()


def paragraphs(pattern):
    # Feed paragraphs rather than whole books: the trainer's pre-tokenization parallelizes per item.
    for text in read_books(pattern):
        for p in text.split("\n\n"):
            yield p + "\n\n"


def build(vocab_size, pattern):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(paragraphs(pattern), trainer=trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    assert tok.token_to_id(SPECIALS[0]) == EOS_ID and tok.token_to_id(SPECIALS[1]) == BOS_ID
    return tok


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="../shared/corpus/train")
    ap.add_argument("--out", default=".data/tokenizer.json")
    ap.add_argument("--vocab", type=int, default=8192)
    a = ap.parse_args()
    tok = build(a.vocab, os.path.join(a.corpus, "*.txt*"))
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    tok.save(a.out)
    print("vocab", tok.get_vocab_size(), "->", a.out)
