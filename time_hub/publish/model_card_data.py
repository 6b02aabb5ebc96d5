"""`TimeModelCardData`: everything a TiME model card says, typed, in one `ModelCardData` subclass.

Its Hub fields (language, license, library_name, pipeline_tag, base_model, datasets, metrics, tags, model_name,
eval_results, co2_eq_emissions) are `ModelCardData`'s own and become the YAML front matter (`to_dict`, `to_yaml`;
eval_results as model-index); every other field fills the card's body. `time_hub.publish.card.collect` builds it from
the run's JSON files and `model_cards/model_card.md.j2` renders both: `{{ card_data }}` the front matter, `card` the
body. A typo in the template is an error (StrictUndefined), not an empty line.
"""

from __future__ import annotations

import copy
import importlib.resources
from dataclasses import dataclass, field

import jinja2
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.repocard_data import model_index_to_eval_results

from time_hub.tasks.registry import ENCODER_PIPELINE_TAG

TEMPLATE = "model_card.md.j2"
HUB_FIELDS = (
    "language", "license", "library_name", "pipeline_tag", "base_model", "base_model_relation", "datasets",
    "metrics", "tags", "model_name", "eval_results", "co2_eq_emissions",
)  # fmt: skip


@dataclass
class StudentShape:
    architecture: str
    layers: int
    hidden: int
    heads: int
    ffn: int
    vocab_size: int
    max_positions: int
    parameters: int
    embedding_parameters: int

    @property
    def parameters_m(self) -> str:
        return f"{self.parameters / 1e6:.1f}"

    @property
    def embedding_share(self) -> str:
        return f"{100 * self.embedding_parameters / self.parameters:.0f}%"


@dataclass
class Teacher:
    name: str  # what the card calls it (a Hub id where one was given)
    path: str  # what the run loaded


@dataclass
class Distillation:
    teacher_layer: int
    student_layer: int
    relations: list[str]
    relation_heads: int
    init: str
    extra_terms: str
    corpus: list[str]
    steps: int | None
    batch_size: int
    tokens_seen: int | None
    tokens_seen_kind: str | None
    hyperparameters: dict


@dataclass
class CheckpointSelection:
    checkpoint: str
    step: int
    loss: float
    random_loss: float
    candidates: int


@dataclass
class ResultRow:
    task: str
    dataset: str
    split: str
    metric: str
    value: float
    teacher: float | None  # the teacher fine-tuned and evaluated the same way
    retention: float | None


@dataclass
class SpeedRow:
    batch_size: int
    latency_ms: float
    sentences_per_s: float
    latency_ratio: float
    throughput_ratio: float


@dataclass
class Speed:
    device: str
    dtype: str
    hardware: str
    reference: str
    energy: str
    rows: list[SpeedRow]
    plots: list[str]


@dataclass
class FineTuning:
    """What a task card adds: the fine-tuning run and its data."""

    title: str
    labels: list[str]
    data: str
    summary: str


@dataclass(repr=False)
class TimeModelCardData(ModelCardData):
    # The Hub's metadata (front matter).
    language: list[str] = field(default_factory=list)
    license: str = "apache-2.0"
    library_name: str = "transformers"
    pipeline_tag: str = ENCODER_PIPELINE_TAG
    base_model: str | None = None
    base_model_relation: str | None = None
    datasets: list[str] | None = None
    metrics: list[str] | None = None
    tags: list[str] | None = None
    model_name: str | None = None
    eval_results: list[EvalResult] | None = None
    co2_eq_emissions: dict | None = None
    # The body.
    repo_id: str = ""
    task: str | None = None
    language_names: str = ""
    teacher: Teacher | None = None
    student: StudentShape | None = None
    distillation: Distillation | None = None
    selection: CheckpointSelection | None = None
    finetuning: FineTuning | None = None
    results: list[ResultRow] = field(default_factory=list)
    speed: Speed | None = None
    hardware: str = "not recorded"
    software: str = "not recorded"
    emissions_text: str = ""
    example_sentence: str = ""
    curve_plot: str | None = None
    sources: list[str] = field(default_factory=list)
    time_hub_version: str = ""

    def __post_init__(self):
        # What ModelCardData.__init__ would do with these fields: unique tags, eval results checked against the name.
        ModelCardData.__init__(self, **{name: getattr(self, name) for name in HUB_FIELDS})

    def to_dict(self) -> dict:
        """The front matter only (the body fields are not Hub metadata)."""
        data = {name: copy.deepcopy(getattr(self, name)) for name in HUB_FIELDS}
        self._to_dict(data)
        return {key: value for key, value in data.items() if value is not None}


def render(data: TimeModelCardData) -> ModelCard:
    """The template filled with `data`, checked offline (the Hub's own validate-yaml runs on push)."""
    template = importlib.resources.files("time_hub.model_cards").joinpath(TEMPLATE).read_text(encoding="utf-8")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    model_card = ModelCard(env.from_string(template).render(card_data=data.to_yaml(), card=data))
    check(model_card)
    return model_card


def check(model_card: ModelCard) -> None:
    """Metadata parses back with the required keys, and model-index round-trips."""
    reparsed = ModelCard(str(model_card))
    data = reparsed.data.to_dict()
    for key in ("language", "license", "library_name", "pipeline_tag", "tags"):
        if not data.get(key):
            raise ValueError(f"model card metadata: '{key}' is missing")
    if "model-index" in data:
        name, results = model_index_to_eval_results(data["model-index"])
        if not results or any(r.metric_value is None for r in results):
            raise ValueError("model card metadata: model-index has no usable results")
