"""The options of `tlcli sft`, `tlcli dpo` and `tlcli generate`: the one declaration of their flags."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import model_validator

from tlcli.fields import PANEL_TRAIN, LLMOptions, LoRAOptions, Seeded, TrainOptions, option

PANEL_MODEL = "Model and data"
PANEL_PREFERENCE = "Preference loss"


class TuneOptions(LoRAOptions, TrainOptions):
    """What sft and dpo share: the model, the sequence length, the validation split and the export."""

    model: str = option(..., "The model to tune: hf:MODEL_ID (from the local Hugging Face cache), a model folder, "
                        "or a run folder of `tlcli sft`/`tlcli dpo`.", short="-m", panel=PANEL_MODEL,
                        missing="pass --model hf:MODEL_ID, a model folder or a run folder")
    max_seq_len: int | None = option(None, "Longest sequence in tokens; longer examples are cut at the end "
                                     "(default: the model's context, at most 1024).", ge=8, panel=PANEL_MODEL)
    chat_template: Literal["auto", "plain"] = option(
        "auto", "auto: the model's chat template, else tlcli's plain one | plain: the plain one (`role: content` "
        "lines).", panel=PANEL_MODEL)
    val: str | None = option(None, "Validation examples (same format); default: --val-split of the data.",
                             panel=PANEL_MODEL)
    val_split: float = option(0.1, "Share of the examples held out for validation (seeded).", ge=0.0, lt=1.0,
                              panel=PANEL_MODEL)
    export: Literal["auto", "full", "adapter"] = option(
        "auto", "What model/ holds: auto (a PEFT adapter with --lora, else the full model) | full (adapters "
        "merged into a full transformers folder) | adapter (needs --lora).", panel=PANEL_MODEL)
    lr: float | None = option(None, "Learning rate (default: depends on the method and on --lora).", gt=0,
                              panel=PANEL_TRAIN)
    epochs: int = option(3, "Passes over the training data.", ge=1, panel=PANEL_TRAIN)
    batch_size: int = option(8, "Examples per micro-batch.", short="-b", ge=1, panel=PANEL_TRAIN)
    weight_decay: float = option(0.0, "Weight decay (never on biases and norms).", ge=0, panel=PANEL_TRAIN)
    workers: int | None = option(0, "Data-loading processes (default 0: batches of token ids are cheap to make "
                                 "in the main process).", ge=0, panel="Device", resume=True)
    eval_batch_size: int = option(16, ge=1, flag=False)
    monitor: str = option("val_loss", flag=False)
    monitor_mode: Literal["max", "min"] = option("min", flag=False)

    #: (full fine-tuning, LoRA) learning rates when --lr is not given
    DEFAULT_LR: ClassVar[tuple[float, float]] = (2e-5, 2e-4)

    @model_validator(mode="after")
    def _defaults(self):
        if self.lr is None:
            self.lr = self.DEFAULT_LR[1 if self.lora else 0]
        if self.export == "adapter" and not self.lora:
            raise ValueError("--export adapter needs adapters: add --lora RANK, or use --export full")
        return self


class SFTConfig(TuneOptions):
    data: str = option(..., "JSON Lines: chat {\"messages\"}, {\"prompt\", \"completion\"} or Alpaca "
                       "{\"instruction\", \"input\", \"output\"}.", argument=True, metavar="DATA",
                       missing="pass a JSON Lines file of examples (or --resume RUN_DIR)")
    packing: bool = option(False, "Pack short examples into rows of --max-seq-len tokens (best fit); each example "
                           "still attends only to itself.", panel=PANEL_MODEL)


class DPOConfig(TuneOptions):
    pairs: str = option(..., "JSON Lines of {\"prompt\", \"chosen\", \"rejected\"} (strings or chat messages).",
                        argument=True, metavar="PAIRS", missing="pass a JSON Lines file of preference pairs "
                        "(or --resume RUN_DIR)")
    ref: str | None = option(None, "The reference model (default: --model as it starts; with --lora, the same "
                             "weights with the adapters switched off).", panel=PANEL_PREFERENCE)
    loss: Literal["dpo", "ipo", "simpo"] = option("dpo", "dpo | ipo | simpo (SimPO needs no reference).",
                                                  panel=PANEL_PREFERENCE)
    beta: float | None = option(None, "The loss's beta (default: 0.1 for dpo and ipo, 2.0 for simpo).", gt=0,
                                le=100.0, panel=PANEL_PREFERENCE)
    simpo_gamma: float = option(1.0, "SimPO's target reward margin gamma.", ge=0.0, le=100.0,
                                panel=PANEL_PREFERENCE)
    sft_weight: float = option(0.0, "Add this weight times the chosen replies' negative log-likelihood per token "
                               "(RPO; TRL's loss_type [..., \"sft\"]): keeps the chosen replies likely while the "
                               "preference moves.", ge=0.0, le=100.0, panel=PANEL_PREFERENCE)
    cache: bool = option(True, "Read and write the cache of reference log-probabilities.", panel=PANEL_PREFERENCE)

    DEFAULT_LR: ClassVar[tuple[float, float]] = (1e-6, 1e-5)

    @model_validator(mode="after")
    def _preference(self):
        from tlcli_tune.losses import DEFAULT_BETA

        if self.beta is None:
            self.beta = DEFAULT_BETA[self.loss]
        if self.ref is not None and self.loss == "simpo":
            raise ValueError("--loss simpo uses no reference model: drop --ref")
        return self


class GenerateConfig(Seeded, LLMOptions):
    model: str = option(..., "A run folder of `tlcli sft`/`tlcli dpo`, a model folder, hf:MODEL_ID (or any --llm "
                        "spec).",
                        argument=True, metavar="MODEL", missing="pass a run folder or hf:MODEL")
    prompt: str = option(..., "The user's message; '-' reads it from stdin.", argument=True, metavar="PROMPT",
                         missing="pass a prompt, or '-' to read it from stdin")
    system: str | None = option(None, "A system message before the prompt.")
    raw: bool = option(False, "Give the model the prompt as it is, without its chat template.")
    llm: str | None = option(None, flag=False)
