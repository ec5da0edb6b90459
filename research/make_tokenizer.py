"""Build the fixture tokenizer and the stream token ids (runs on the CPU machine, needs `tokenizers`).

Writes:
  research/tokenizer/tokenizer.json      byte-level BPE, 320 ids: <s>=0, </s>=1, 256 bytes, 62 merges
  research/tokenizer/tokenizer-bos.json  the same plus a TemplateProcessing post-processor "<s> $A"
  research/stream_tokens.json            {"source": ..., "tokens": [2000 ids]}: the first 2000 ids of the
                                         sorted concatenation of /work/shared/corpus/longeval/*.txt,
                                         encoded without special tokens
Both travel to the GPU machine inside research/ (the corpus does not).
"""
import glob, json, lzma, os
from tokenizers import Tokenizer, models, pre_tokenizers, processors, decoders, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = "/work/shared/corpus"
VOCAB = 320
N_STREAM = 2000


def training_text():
    out = []
    for f in sorted(glob.glob(f"{CORPUS}/train/*.txt.xz"))[:12]:
        with lzma.open(f, "rt", encoding="utf-8") as fh:
            out.append(fh.read(40_000))
    return out


def main():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = training_text()
    print("training chars:", sum(map(len, texts)))
    tok.train_from_iterator(texts, trainer=trainer)
    assert tok.get_vocab_size() == VOCAB, tok.get_vocab_size()
    assert tok.token_to_id("<s>") == 0 and tok.token_to_id("</s>") == 1
    os.makedirs(f"{HERE}/tokenizer", exist_ok=True)
    tok.save(f"{HERE}/tokenizer/tokenizer.json")
    bos = Tokenizer.from_file(f"{HERE}/tokenizer/tokenizer.json")
    bos.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 0)])
    bos.save(f"{HERE}/tokenizer/tokenizer-bos.json")  # same vocab, prepends <s> (llama-family fixtures)

    files = sorted(glob.glob(f"{CORPUS}/longeval/*.txt"))
    text = "".join(open(f, encoding="utf-8").read() for f in files)
    ids = tok.encode(text, add_special_tokens=False).ids[:N_STREAM]
    assert len(ids) == N_STREAM
    assert tok.decode(ids) == text[: len(tok.decode(ids))]
    with open(f"{HERE}/stream_tokens.json", "w") as fh:
        json.dump({"source": "sorted concatenation of corpus/longeval/*.txt (" +
                   ", ".join(os.path.basename(f) for f in files) +
                   "), encoded with add_special_tokens=False, first 2000 ids", "tokens": ids}, fh)
    print("stream: %d ids cover %d chars; first: %r" % (len(ids), len(tok.decode(ids)), tok.decode(ids[:20])))


if __name__ == "__main__":
    main()
