"""The typed experiment schema. Unknown keys and wrong types are errors (extra="forbid")."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator, model_validator

from xstilts.errors import UserError
from xstilts.paths import component


# Neither flag changes the weights a source gives (a model asking for its own code is refused
# without trust_remote_code, never loaded as something else), so neither is in a checkpoint key.
ALLOW_PICKLE_HELP = (
    "load a start model whose weights are pickle files (.bin, .pt) with torch.load(weights_only=True); "
    "off: safetensors only, as unpickling can run code"
)
TRUST_REMOTE_CODE_HELP = "run the start model's own Python code (its config's auto_map); off: such a model is refused"


class HandOff(str, Enum):
    """How weights pass from one phase's checkpoint to the next phase."""

    ENCODER_ONLY = "encoder_only"
    ENCODER_AND_MATCHING_HEADS = "encoder_and_matching_heads"


class Device(str, Enum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class Precision(str, Enum):
    """fp32; bf16 autocast (weights stay fp32); tf32: fp32 whose CUDA matrix products use
    TensorFloat-32 (about 1e-3 relative error, several times faster on Ampere and later; on a CPU
    the same as fp32)."""

    FP32 = "fp32"
    BF16 = "bf16"
    TF32 = "tf32"


class Sampler(str, Enum):
    """How a multi-task phase picks tasks: p ~ n (proportional), p ~ 1, p ~ n^(1/T), or fixed."""

    PROPORTIONAL = "proportional"
    UNIFORM = "uniform"
    TEMPERATURE = "temperature"
    FIXED = "fixed"


class Mixing(str, Enum):
    """One task per optimiser step, or every batch mixed across tasks by the sampler."""

    TASK_PER_STEP = "task_per_step"
    MIXED_BATCH = "mixed_batch"


class DevAggregation(str, Enum):
    """How per-task English dev scores combine for early stopping."""

    EQUAL = "equal"
    SIZE_WEIGHTED = "size_weighted"


class Pooling(str, Enum):
    """How a sentence embedding is read off the encoder for retrieval."""

    MEAN = "mean"
    CLS = "cls"


class ModelMode(str, Enum):
    """How a start model is used: an encoder with xstilts' heads (encoder-decoder models: their
    encoder stack), or a text-to-text model that reads and writes text for every task."""

    ENCODER = "encoder"
    TEXT_TO_TEXT = "text_to_text"


class Scoring(str, Enum):
    """How a text-to-text model answers classification and multiple choice: the label string or
    option with the highest sequence log-likelihood (rank classification), or free generation
    scored by exact match (an output that matches no label is wrong)."""

    RANK = "rank"
    GENERATE = "generate"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class TextToTextConfig(Strict):
    """Text-to-text mode (`mode: text_to_text`): how examples become text and outputs predictions.

    `prompt` changes the training data (it is in every checkpoint key); the other settings
    change only how outputs are read (evaluation).
    """

    prompt: str | None = Field(
        None, description="name of an instruction template in each task's `prompts` (FLAN-style); "
        "unset: the mT5 rendering (task prefix, field names, English label words)"
    )
    scoring: Scoring = Field(Scoring.RANK, description="classification and multiple choice: rank the options or generate")
    num_beams: PositiveInt = Field(1, description="beams of generation (1: greedy)")
    max_new_tokens: PositiveInt | None = Field(
        None, description="longest generated output in tokens (default: the task's max_target_length)"
    )


class TrainConfig(Strict):
    """Optimisation settings of one training phase."""

    learning_rate: PositiveFloat = Field(3e-5, description="peak AdamW learning rate")
    batch_size: PositiveInt = Field(
        32, description="examples per micro-batch, each with all its features (choices, windows); a step takes batch_size x grad_accum"
    )
    grad_accum: PositiveInt = Field(1, description="batches accumulated per optimiser step")
    epochs: PositiveFloat = Field(
        2.0, description="passes over the examples (not features) of all tasks of the phase, summed over tasks"
    )
    max_steps: PositiveInt | None = Field(None, description="stop after this many optimiser steps")
    max_length: PositiveInt = Field(128, description="tokens per model input (classification truncates; tagging and QA split into windows)")
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="linear warm-up share of the steps")
    weight_decay: float = Field(0.01, ge=0.0, description="AdamW weight decay (biases and LayerNorm weights are not decayed)")
    dropout: float | None = Field(None, ge=0.0, lt=1.0, description="head dropout (model default when unset)")
    freeze_embeddings: bool = Field(False, description="keep the word embeddings fixed while fine-tuning")
    max_train_examples: PositiveInt | None = Field(
        None, description="subsample each training set to this many examples (seeded by data_seed; smaller samples nest in larger ones)"
    )
    eval_every_epoch: bool = Field(True, description="select the epoch with the best English dev score")
    group_by_length: bool = Field(
        True,
        description="batch examples of similar length (chunks of 50 batches in random order, each sorted by "
        "length, as HF's group_by_length): far less padding; false: plain shuffled batches",
    )
    compile: bool = Field(False, description="torch.compile the model (dynamic shapes); pays off on GPUs and long phases")


class RetrievalConfig(Strict):
    """Sentence embeddings for retrieval tasks (Tatoeba, BUCC, LAReQA, Mewsli-X).

    XTREME used mean pooling of layer 14 of 24 for XLM-R Large; jiant used CLS of layer 7:
    both are choices here, and the run's config records which one produced a number. So with
    the text prefixes of a model's recipe (E5: "query: "): an unset prefix is resolved per model
    before the run starts, and the run's config holds the resolved text.
    """

    pooling: Pooling = Pooling.MEAN
    layer: int = Field(-1, description="hidden layer to pool (0 = embeddings, -1 = last)")
    max_length: PositiveInt = 128
    batch_size: PositiveInt = 64
    normalize: bool = Field(True, description="L2-normalise embeddings (cosine similarity)")
    query_prefix: str | None = Field(
        None,
        description="text put before every query-side sentence (Tatoeba: English; BUCC: the other language; "
        "LAReQA, Mewsli-X: questions, mentions); unset: the model's recipe (packaged e5: 'query: '), else none",
    )
    candidate_prefix: str | None = Field(
        None,
        description="text put before every candidate-side sentence (Tatoeba: the other language; BUCC: English; "
        "LAReQA, Mewsli-X: the pool); unset: the model's recipe (packaged e5: 'query: ' on bitext, "
        "'passage: ' on ranking), else none",
    )


class MixtureConfig(Strict):
    """How the tasks of a multi-task phase share the optimisation steps.

    Task sizes are example counts (a multiple-choice example with four choices, or a QA example
    split into three windows, is one example), for the proportional and temperature samplers alike.
    """

    sampler: Sampler = Sampler.PROPORTIONAL
    temperature: PositiveFloat = Field(2.0, description="T of the temperature sampler, p ~ n^(1/T)")
    example_cap: PositiveInt | None = Field(
        None, description="cap each task's example count (not features) at this before computing p"
    )
    probabilities: dict[str, PositiveFloat] | None = Field(None, description="task -> p for the fixed sampler")
    mixing: Mixing = Mixing.TASK_PER_STEP
    dev_aggregation: DevAggregation = DevAggregation.EQUAL

    @model_validator(mode="after")
    def _fixed_needs_probabilities(self) -> MixtureConfig:
        if (self.sampler is Sampler.FIXED) != (self.probabilities is not None):
            raise ValueError("probabilities must be given exactly when sampler is 'fixed'")
        if self.probabilities and abs(sum(self.probabilities.values()) - 1.0) > 1e-6:
            raise ValueError(f"probabilities must sum to 1 (got {sum(self.probabilities.values())})")
        return self


class IntermediateConfig(Strict):
    """Phase 2: English intermediate-task training on one task or a mixture."""

    tasks: list[str] = Field(min_length=1, description="intermediate tasks, trained jointly")
    mixture: MixtureConfig = Field(default_factory=MixtureConfig)
    max_examples: dict[str, PositiveInt] = Field(
        default_factory=dict, description="task -> subsample its training set to N examples (seeded by data_seed; nested)"
    )
    train_languages: dict[str, str] = Field(
        default_factory=dict,
        description="task -> language of the training and dev data (default: the task's train_language)",
    )
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _known_tasks(self) -> IntermediateConfig:
        named = (
            ("mixture.probabilities", self.mixture.probabilities or {}),
            ("max_examples", self.max_examples),
            ("train_languages", self.train_languages),
        )
        for field, names in named:
            unknown = sorted(set(names) - set(self.tasks))
            if unknown:
                raise ValueError(f"{field} names tasks that are not in intermediate.tasks: {unknown}")
        if self.mixture.probabilities is not None and set(self.mixture.probabilities) != set(self.tasks):
            raise ValueError("mixture.probabilities must give a probability for every intermediate task")
        return self


class SelectionConfig(Strict):
    """Model selection beside the English-dev-selected checkpoint (phase "target", zero-shot proper).

    English dev accuracy predicts target-language accuracy poorly (Keung et al. 2020), so two
    other choices can be stored side by side: the mean of the last k epochs' weights (phase
    "target-average"; needs no target-language dev set) and, per language, the epoch with the
    best dev score of that language (phase "target-oracle"; an upper bound, not zero-shot).
    Neither changes training: the English-selected checkpoint and its key stay the same.
    """

    average_last: int = Field(
        0, ge=0, description="evaluate the parameter-wise mean of the last k end-of-epoch weights as phase "
        "'target-average' (0: off; k >= 2)"
    )
    oracle: bool = Field(
        False, description="per language, the epoch with the best dev score of that language, its test rows as "
        "phase 'target-oracle' (needs target-language dev sets)"
    )
    keep_snapshots: bool = Field(
        False, description="keep the end-of-epoch weights (STORE/selection/target-<key>/) after evaluation; "
        "a rerun then needs no retraining to evaluate them again"
    )

    @model_validator(mode="after")
    def _at_least_two(self) -> SelectionConfig:
        if self.average_last == 1:
            raise ValueError("average_last must be 0 (off) or at least 2 (the mean of one epoch is that epoch)")
        return self

    @property
    def enabled(self) -> bool:
        """Whether any selection besides English dev is asked for (epoch snapshots are needed)."""
        return self.average_last >= 2 or self.oracle


class TargetConfig(Strict):
    """Phase 3: English target-task training, then the zero-shot sweep over languages."""

    task: str = Field(description="target task name")
    handoff: HandOff = HandOff.ENCODER_ONLY
    train: TrainConfig = Field(default_factory=TrainConfig)
    languages: list[str] | None = Field(None, description="languages to evaluate (default: all of the task)")
    eval_splits: list[str] | None = Field(None, description="splits to score (default: the task's dev and test splits)")
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    auxiliary: dict[str, PositiveFloat] = Field(
        default_factory=dict,
        description="task -> share of training examples drawn from it, mixed into target training (e.g. a little "
        "multilingual span corruption against accidental translation); the target gets the rest",
    )

    @model_validator(mode="after")
    def _auxiliary_shares(self) -> TargetConfig:
        if self.task in self.auxiliary:
            raise ValueError("target.auxiliary names the target task itself")
        if sum(self.auxiliary.values()) >= 1.0:
            raise ValueError(f"target.auxiliary shares must sum to less than 1 (got {sum(self.auxiliary.values())})")
        return self


class ExperimentConfig(Strict):
    """One experiment: start model -> (intermediate) -> target -> zero-shot evaluation."""

    name: str = Field(description="experiment name; the run id starts with it")
    model: str = Field(description="hub id, local model directory, checkpoint or packaged:NAME")
    model_revision: str | None = Field(None, description="hub model revision (branch, tag or commit; default: main)")
    allow_pickle_weights: bool = Field(False, description=ALLOW_PICKLE_HELP)
    trust_remote_code: bool = Field(False, description=TRUST_REMOTE_CODE_HELP)
    seed: int = Field(0, description="seed of head initialisation, dropout and batch order (reset at every phase)")
    data_seed: int = Field(0, description="seed of training-set subsamples (max_examples, max_train_examples)")
    data: dict[str, Path] = Field(default_factory=dict, description="task name -> data directory")
    task_specs: list[Path] = Field(default_factory=list, description="extra task spec YAML files")
    intermediate: IntermediateConfig | None = None
    target: TargetConfig
    mode: ModelMode = Field(ModelMode.ENCODER, description="encoder (with xstilts' heads) or text_to_text")
    text_to_text: TextToTextConfig = Field(default_factory=TextToTextConfig)
    device: Device = Device.AUTO
    precision: Precision = Precision.FP32
    checkpoint_every: PositiveInt | None = Field(
        500,
        description="save the training state every N optimiser steps, for a rerun to resume from (null: only on "
        "SIGTERM/SIGUSR1); changes when state is saved, never the weights, so it is in no checkpoint key",
    )

    @field_validator("name")
    @classmethod
    def _one_folder_name(cls, name: str) -> str:
        """The name starts the run id, which names the run's folder in the store."""
        try:
            return component(name, "name")
        except UserError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _distinct_tasks(self) -> ExperimentConfig:
        if self.intermediate and len(set(self.intermediate.tasks)) != len(self.intermediate.tasks):
            raise ValueError("intermediate.tasks contains a task twice")
        return self


class EvalConfig(Strict):
    """`xstilts eval`: a zero-shot sweep of an existing model or checkpoint, no training."""

    model: str = Field(description="checkpoint directory, model directory, hub id or packaged:NAME")
    task: str
    data_dir: Path | None = Field(None, description="task data directory (default: the hub)")
    languages: list[str] | None = None
    splits: list[str] = Field(default_factory=lambda: ["test"])
    task_specs: list[Path] = Field(default_factory=list)
    batch_size: PositiveInt = 64
    max_length: PositiveInt | None = Field(None, description="tokens per input (default: the checkpoint's training max_length, else 128)")
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    mode: ModelMode | None = Field(None, description="encoder or text_to_text (default: the checkpoint's mode, else encoder)")
    text_to_text: TextToTextConfig = Field(default_factory=TextToTextConfig)
    device: Device = Device.AUTO
    precision: Precision = Precision.FP32
    allow_pickle_weights: bool = Field(False, description=ALLOW_PICKLE_HELP)
    trust_remote_code: bool = Field(False, description=TRUST_REMOTE_CODE_HELP)


class TinyModelConfig(Strict):
    """Size of a tiny BERT built from scratch with a locally trained WordPiece tokenizer."""

    vocab_size: PositiveInt = 2000
    hidden_size: PositiveInt = 128
    num_layers: PositiveInt = 2
    num_heads: PositiveInt = 4


class PretrainConfig(Strict):
    """Masked-LM pretraining on the monolingual text of every language (no parallel data)."""

    steps: PositiveInt = 3000
    batch_size: PositiveInt = 128
    learning_rate: PositiveFloat = 5e-4
    max_length: PositiveInt = 64


class TinyT5Config(Strict):
    """The miniature's text-to-text start models (research question (a)): a tiny T5 v1.1-style
    model with a SentencePiece Unigram tokenizer trained on the synthetic text, pretrained with
    span corruption on every synthetic language (`quickstart:t5`), and its "instruction-tuned"
    counterpart, trained from it on `instruct_tasks` with their `instruct_prompt` templates
    (`quickstart:t5-instruct`, a FLAN stand-in)."""

    vocab_size: PositiveInt = Field(1000, description="most SentencePiece pieces (a small corpus may give fewer); 32 sentinels on top")
    d_model: PositiveInt = 128
    num_layers: PositiveInt = Field(2, description="encoder blocks, and as many decoder blocks")
    num_heads: PositiveInt = 4
    d_ff: PositiveInt = Field(256, description="gated-GELU feed-forward width")
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig, description="span-corruption pretraining")
    instruct_tasks: list[str] = Field(
        default_factory=lambda: ["synth-topic", "synth-squad", "synth-ner", "synth-pos"],
        description="the instruction mixture: English training data of these tasks (keep the study's tasks out)",
    )
    instruct_prompt: str = Field("instruct", description="the prompt template of each instruction task")
    instruct_train: TrainConfig = Field(default_factory=TrainConfig, description="instruction training (text-to-text, mixed batches)")


class QuickstartConfig(Strict):
    """The offline miniature: synthetic data -> tiny model -> MLM -> arms x targets -> zero-shot."""

    seed: int = 0
    sizes: dict[str, dict[str, int]] = Field(default_factory=dict, description="synthetic data sizes per task/split")
    languages_file: Path | None = Field(
        None, description="languages YAML in synthetic/languages.yaml's format (same codes): vary each language's transformations"
    )
    model: TinyModelConfig = Field(default_factory=TinyModelConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    arms: dict[str, list[str]] = Field(description="arm name -> intermediate tasks ([] = no intermediate phase)")
    control: bool = Field(True, description="add a random-init arm without pretraining (transfer must beat it)")
    targets: list[str] = Field(min_length=1)
    data: dict[str, str] = Field(description="task -> folder of the generated benchmark holding its files")
    intermediate_train: TrainConfig = Field(default_factory=TrainConfig)
    target_train: TrainConfig = Field(default_factory=TrainConfig)
    eval_splits: list[str] = Field(default_factory=lambda: ["test"])
    t5: TinyT5Config = Field(default_factory=TinyT5Config)
    prepare_t5: bool = Field(
        False, description="also prepare the tiny T5 pair (quickstart:t5, quickstart:t5-instruct); a study whose runs use them sets it"
    )
    prepare_bert: bool = Field(
        True,
        description="prepare the tiny BERT pair (quickstart:initial, quickstart:pretrained); a study whose runs use neither "
        "clears it (`xstilts quickstart` always builds them: its arms use them)",
    )
    device: Device = Device.AUTO
    precision: Precision = Precision.FP32
