"""WordNet gloss parsing, the stratified split and the missing-data error, on synthetic files."""
from collections import Counter

import pytest


from benchmarks.common import data  # importable via pytest's pythonpath (pyproject)

HEADER = [
    "  1 This software and database is being provided to you, the LICENSEE, by  ",
    "  2 Princeton University under the following license.  By obtaining, using  ",
    "  3   ",
]


def synset_line(offset, lex_file, word, gloss):
    return (f"{offset:08d} {lex_file:02d} n 01 {word} 0 001 @ 00001740 n 0000 | {gloss}  ")


def write_data_noun(path, per_class):
    """A data.noun with ``per_class[c]`` synsets of class ``c`` (lexicographer file c + 3)."""
    lines = list(HEADER)
    offset = 1740
    for class_id, count in enumerate(per_class):
        for i in range(count):
            lines.append(synset_line(offset, class_id + 3, f"w{class_id}_{i}",
                                     f"gloss {i} of class {class_id}; \"an example | with a bar\""))
            offset += 100
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_parse_skips_header_and_maps_lexicographer_files():
    lines = HEADER + [synset_line(1740, 3, "entity", "that which is perceived"),
                      synset_line(1930, 28, "time", "the continuum of experience"),
                      "",
                      synset_line(2137, 18, "person", "a human being; \"there was too much "
                                  "for one person to do\"")]
    glosses, labels = data.parse_data_noun(lines)
    assert labels == [0, 25, 15]
    assert data.LEXNAMES[0] == "noun.Tops" and data.LEXNAMES[25] == "noun.time"
    assert data.LEXNAMES[15] == "noun.person" and data.NUM_CLASSES == 26
    assert glosses[0] == "that which is perceived"
    assert glosses[2] == 'a human being; "there was too much for one person to do"'


def test_parse_keeps_text_after_the_first_bar_only_once():
    glosses, _ = data.parse_data_noun([synset_line(1740, 5, "x", "a | b")])
    assert glosses == ["a | b"]


@pytest.mark.parametrize("line, match", [
    (synset_line(1740, 2, "x", "verb-ish"), "not a noun file"),
    (synset_line(1740, 29, "x", "past the end"), "not a noun file"),
    ("00001740 03 n 01 entity 0 000 no gloss separator", "not a synset line"),
])
def test_parse_rejects_malformed_lines(line, match):
    with pytest.raises(ValueError, match=match):
        data.parse_data_noun([line])


def test_read_file_and_stratified_split(tmp_path):
    per_class = [10 + 3 * c for c in range(26)]
    path = write_data_noun(tmp_path / "data.noun", per_class)
    texts, labels = data.read_wordnet_glosses(path)
    assert len(texts) == sum(per_class) and Counter(labels) == dict(enumerate(per_class))

    splits = data.load_wordnet_splits(seed=0, n_train=300, n_val=100, n_test=100, path=path)
    assert {k: len(v) for k, v in splits.items()} == {"train": 300, "validation": 100,
                                                      "test": 100}
    seen = [t for s in splits.values() for t in s.texts]
    assert len(set(seen)) == 500, "splits overlap"
    for split in splits.values():
        for text, label in zip(split.texts, split.labels):
            assert text.startswith("gloss ") and text.split()[4].rstrip(";") == str(label)
    # Stratified: every class keeps its share of the whole file, to within one example.
    for name, split in splits.items():
        counts = Counter(split.labels)
        for c, n in enumerate(per_class):
            assert abs(counts[c] - n * len(split) / len(texts)) <= 1.0 + 1e-9, (name, c)


def test_split_is_deterministic_for_a_seed(tmp_path):
    path = write_data_noun(tmp_path / "data.noun", [12] * 26)
    a = data.load_wordnet_splits(seed=3, n_train=150, n_val=52, n_test=52, path=path)
    b = data.load_wordnet_splits(seed=3, n_train=150, n_val=52, n_test=52, path=path)
    c = data.load_wordnet_splits(seed=4, n_train=150, n_val=52, n_test=52, path=path)
    assert a == b
    assert a["test"].texts != c["test"].texts


def test_split_uses_the_whole_file_when_asked(tmp_path):
    path = write_data_noun(tmp_path / "data.noun", [4] * 26)
    splits = data.load_wordnet_splits(seed=0, n_train=52, n_val=26, n_test=26, path=path)
    assert sum(len(s) for s in splits.values()) == 104
    for split in splits.values():
        assert set(split.labels) == set(range(26))


def test_split_sizes_are_checked(tmp_path):
    path = write_data_noun(tmp_path / "data.noun", [4] * 26)
    with pytest.raises(ValueError, match="asked for 200 examples but the data has 104"):
        data.load_wordnet_splits(n_train=100, n_val=50, n_test=50, path=path)
    with pytest.raises(ValueError, match="positive"):
        data.load_wordnet_splits(n_train=50, n_val=0, n_test=10, path=path)


def test_missing_file_names_the_package_to_install(tmp_path):
    missing = tmp_path / "nowhere" / "data.noun"
    with pytest.raises(data.WordNetMissingError, match="apt-get install -y wordnet-base"):
        data.read_wordnet_glosses(missing)
    with pytest.raises(FileNotFoundError, match="wordnet-base"):
        data.load_wordnet_splits(path=missing)
    # Only the system path is ever installed; any other path just reports what to do.
    with pytest.raises(data.WordNetMissingError, match="apt-get install -y wordnet-base"):
        data.ensure_wordnet(install=True, path=missing)


def test_ensure_wordnet_returns_an_existing_file(tmp_path):
    path = write_data_noun(tmp_path / "data.noun", [1] * 26)
    assert data.ensure_wordnet(install=False, path=path) == path


def test_tokenize_fixed_length_and_cached():
    pytest.importorskip("transformers")
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "gloss", "of", "class", "one"]
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    backend = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok = BertTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                            cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    texts = ["a gloss of class one", "a gloss of class one " * 10]
    out = data.tokenize(texts, [0, 25], tok, max_length=8)
    assert out["input_ids"].shape == (2, 8) and out["attention_mask"].shape == (2, 8)
    assert out["labels"].tolist() == [0, 25]
    assert out["input_ids"][0].tolist() == [2, 5, 6, 7, 8, 9, 3, 0]
    assert out["attention_mask"][0].tolist() == [1] * 7 + [0]
    assert out["attention_mask"][1].tolist() == [1] * 8
    out.pop("labels")
    again = data.tokenize(texts, [0, 25], tok, max_length=8)
    assert "labels" in again and again["input_ids"] is out["input_ids"]
