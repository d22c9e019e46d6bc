"""The plugin interface: what a backend gives tlcli.

A plugin is one way of adapting a model (fine-tuning, CLIP probes, soft prompts, RAG, ...). It is found
through the entry-point group ``tlcli.plugins``; the entry point names a :class:`Plugin` object. Built-in
plugins under ``plugins/`` register exactly like third-party ones.

Loading a plugin must stay cheap: the module that defines the ``Plugin`` and its command functions imports
nothing heavy (torch, open_clip, transformers) at top level. Heavy imports go inside the command bodies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import typer


@dataclass(frozen=True)
class Plugin:
    """What a backend contributes.

    name: unique, short, lower-case (``finetune``, ``clip``).
    commands: the plugin's commands, declared without importing them: ``"distill"`` (or ``"rag index"`` for
        a command in a group) mapped to ``("module:ATTR", "one-line summary")``, where ATTR names a
        :class:`tlcli.cli.command.Command` (or a Typer app / Click command). ``tlcli --help`` shows the
        summary; the module is imported only when the command runs.
    groups: one-line help of each group word used in ``commands`` (``{"rag": "Retrieval over documents."}``).
    group_defaults: the sub-command a group runs when the word after the group names none of its commands
        (``{"prompt-tune": "train"}``: ``tlcli prompt-tune DATA`` is ``tlcli prompt-tune train DATA``).
    register_commands: the older, eager way (imported at every start): called once with the root Typer
        app, it adds commands or groups itself. Prefer ``commands``.
    predictors: model kinds this plugin can load for ``tlcli predict`` / ``tlcli evaluate``, mapped to
        ``"module:function"``. The function takes ``(model_dir: Path, device: str)`` and returns an
        :class:`ImagePredictor` or a :class:`TextPredictor`. The string is imported only when such a model is used.
        The same module may define the ``tlcli merge`` hook of its kinds, ``merge_adapters(model_dir: Path,
        out_dir: Path) -> dict``: read a ``model/`` folder that holds LoRA adapters (see
        :mod:`tlcli.adapters.run_folder`), fold them into the base weights, and write the plain ``model/``
        layout of that kind (the export of the same run without adapters) into ``out_dir``, an empty
        temporary folder renamed into place afterwards. It returns a few summary fields (``kind``,
        ``merged_modules``). The merged model's predictions must equal the adapter model's.
    llm_backends: LLM spec schemes this plugin serves, mapped to ``"module:factory"``; ``--llm
        SCHEME:TARGET?k=v`` calls ``factory(TARGET, {"k": "v"})``, which returns a
        :class:`tlcli.llm.base.LLM`. Built-in schemes (hf, openai, scripted) cannot be replaced.
    tools: agent tools (``"rag" -> "module:factory"``); the factory takes the tool's argument (``rag:DIR`` gives
        ``"DIR"``) and returns a tool object (see the agents plugin).
    metric_sinks: names for ``--report-to`` (``"wandb" -> "module:factory"``); ``factory(run_dir: Path,
        config: dict)`` returns a :class:`MetricSink` for a run that starts or resumes in ``run_dir`` with
        ``config`` (its config.json). Built-in sinks (csv, tensorboard) cannot be replaced.
    description: one line for ``tlcli plugins``.
    help_panel: the heading its commands appear under in ``tlcli --help`` (default: the name, capitalised).
    """

    name: str
    register_commands: Callable[["typer.Typer"], None] | None = None
    commands: dict[str, tuple[str, str]] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    group_defaults: dict[str, str] = field(default_factory=dict)
    predictors: dict[str, str] = field(default_factory=dict)
    llm_backends: dict[str, str] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    metric_sinks: dict[str, str] = field(default_factory=dict)
    description: str = ""
    help_panel: str = ""

    @property
    def panel(self) -> str:
        return self.help_panel or self.name.capitalize()


class ImagePredictor(Protocol):
    """A trained image classifier that ``tlcli predict`` and ``tlcli evaluate`` can run.

    labels: class names in output order.
    transform: PIL RGB image -> float tensor (C, H, W), the model's own preprocessing.
    predict: batch tensor (N, C, H, W) -> class probabilities (N, len(labels)), on the CPU.

    Optional, for `tlcli distill --feature-loss` with this model as the teacher:
    predict_with_features: batch -> (probabilities as ``predict``, penultimate features (N, D) float32 on
    the CPU): what the class head reads (a CLIP model's image embedding), from the same forward pass.

    Optional, for `tlcli export`:
    export_module: () -> :class:`tlcli.export.spec.Exportable`: the network ``predict`` runs as one torch
    module (pixels -> logits; ``softmax(logits)`` is what ``predict`` returns) in float32 on the CPU, with
    an example input and the preprocessing ``transform`` applies (build it with
    ``tlcli.export.spec.image_exportable``). A predictor without it cannot be exported (exit 2).
    """

    labels: list[str]

    def transform(self, image): ...

    def predict(self, batch): ...


class TextPredictor(Protocol):
    """A trained text classifier for ``tlcli predict`` / ``tlcli evaluate``.

    modality: ``"text"`` (an :class:`ImagePredictor` has none, or ``"image"``).
    labels: class names in output order.
    predict_texts: list of strings -> class probabilities, a float array (N, len(labels)).

    Optional, for `tlcli export`:
    export_module: () -> :class:`tlcli.export.spec.Exportable`: (input_ids, attention_mask) -> logits, the
    tokenizer files and maximum length (``tlcli.export.spec.text_exportable``); tokenisation stays outside.
    """

    modality: str
    labels: list[str]

    def predict_texts(self, texts: list[str]): ...


class MetricSink(Protocol):
    """Where a run's events also go while it runs (``--report-to NAME``; see ``tlcli/runs/sinks.py``).

    write: called with every event the run writes, in order, as ``events.jsonl`` holds it (the envelope
        ``{"time", "run", "kind", "step", "epoch", "stage", "data"}`` normalised by
        :func:`tlcli.runs.events.parse_event_line`). :func:`tlcli.runs.scalars.row_of` gives the numbers of a
        ``metric`` or ``eval`` event (loss, lr per group, throughput, validation metrics), named as the CSV
        and TensorBoard sinks name them; :func:`tlcli.runs.scalars.restart_of` says a resumed session
        starts again at a step. Called in the training process: keep it quick (queue uploads).
    close: the session ends (finished, stopped, interrupted or failed): flush and let go.

    A sink that raises is dropped for the rest of the session, with a warning in the run's log; the
    training goes on. ``tlcli runs export RUN --format NAME`` replays a finished run's log into one.
    """

    def write(self, event: dict) -> None: ...

    def close(self) -> None: ...


def resolve_target(target: str):
    """The object a ``"module:attribute"`` string names (imported now, not at plugin load)."""
    import importlib

    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)
