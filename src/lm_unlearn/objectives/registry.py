"""Registry of named loss terms and recipes; builds a weighted objective from config."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import ValidationError, create_model

from lm_unlearn.config import truncate
from lm_unlearn.errors import ConfigError
from lm_unlearn.objectives.context import RunContext, StepContext


@dataclass(frozen=True)
class Term:
    name: str
    fn: Callable[..., torch.Tensor]
    summary: str
    needs_reference: bool
    splits: tuple[str, ...]  # batches it reads: forget, retain, mismatch, refusal
    params_model: type
    # Optional hooks, each called with (model, **params):
    #   layers -> decoder layers whose outputs the term reads (captured by forward hooks);
    #   trainable -> predicate on parameter names: only those train (e.g. RMU's chosen layers).
    layers: Callable[..., tuple[int, ...]] | None = None
    trainable: Callable[..., Callable[[str], bool]] | None = None
    # True: reads logits at every position (kl, undial, whp), of the current model and the
    # reference. False: only response log-probs, so the LM head runs on response positions only
    # and a precomputed reference keeps no logits.
    full_logits: bool = False
    # True: reads only captured layer outputs, no logits (RMU): a forward stops after the last
    # captured layer, so the layers above it and the LM head never run.
    hidden_only: bool = False
    # True: the term teaches the data (plain fine-tuning), so a run of such terms alone shows
    # "fine-tuning", not "unlearning".
    teaches: bool = False
    # Lifecycle hooks, each called once with (run: RunContext, **params), so a two-phase method
    # stays in its term's file:
    #   before_training -> {name: frozen model}: made before the first step while the model is
    #     still the original (whp's reinforced model); the reference runs each beside the
    #     original, its logits in `Outputs.extra[name]` (precomputed like the rest);
    #   after_training -> a JSON-ready record for the manifest's post_phase[term], or None; it
    #     may change the kept weights in place (task-vector negation), before they are saved.
    before_training: Callable[..., dict[str, torch.nn.Module]] | None = None
    after_training: Callable[..., dict[str, Any] | None] | None = None
    # Called with (**params): how many answers the batches draw per forget prompt for the
    # term's split (mismatch's k random normal answers); None: one.
    draws: Callable[..., int] | None = None
    # Called with (**params): the settings of answers the original model generates per forget
    # record before training (altpo's alternates: k, temperature, max_new_tokens, seed), read by
    # the "alternate" batch; None: the term needs none.
    generated_answers: Callable[..., dict[str, Any]] | None = None
    # A term whose value only gives a direction (GRU's retain gradient): its gradient is kept
    # apart from the update, and before the optimizer step the engine calls
    # rectify(update, own, state, **params), which rewrites the other terms' gradients `update`
    # in place given its own `own` (lists over the trainable parameters, None for no gradient)
    # and returns values to log.
    rectify: Callable[..., dict[str, float]] | None = None
    # False: the term reads only the logits of the models its before_training made (distill's
    # teacher), never the original's own outputs, so no frozen copy of the original is made for
    # it and the reference runs only those models.
    reads_original: bool = True

    def params(self) -> dict[str, Any]:
        return {k: f.default for k, f in self.params_model.model_fields.items()}


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    objective: dict[str, float | dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)  # config defaults the recipe implies
    # A procedure above the engine that runs instead of the training loop (a name in
    # `lm_unlearn.methods.PROCEDURES`, e.g. icu's prompt wrapper); None: the engine trains.
    procedure: str | None = None


TERMS: dict[str, Term] = {}
RECIPES: dict[str, Recipe] = {}


def term(
    name: str,
    summary: str,
    *,
    splits: tuple[str, ...] = ("forget",),
    needs_reference: bool = False,
    full_logits: bool = False,
    layers: Callable[..., tuple[int, ...]] | None = None,
    trainable: Callable[..., Callable[[str], bool]] | None = None,
    hidden_only: bool = False,
    teaches: bool = False,
    before_training: Callable[..., dict[str, torch.nn.Module]] | None = None,
    after_training: Callable[..., dict[str, Any] | None] | None = None,
    draws: Callable[..., int] | None = None,
    generated_answers: Callable[..., dict[str, Any]] | None = None,
    rectify: Callable[..., dict[str, float]] | None = None,
    reads_original: bool = True,
):
    """Register `fn(ctx, **params) -> scalar`; its keyword defaults become typed parameters.
    The other keywords are the `Term` fields of the same names."""
    if before_training is not None and not needs_reference:
        raise TypeError(f"term {name}: before_training makes models for the reference; set needs_reference")

    def register(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        fields = {}
        for pname, p in list(inspect.signature(fn).parameters.items())[1:]:
            if p.default is inspect.Parameter.empty:
                raise TypeError(f"term {name}: parameter {pname} needs a default")
            fields[pname] = (p.annotation if p.annotation is not inspect.Parameter.empty else Any, p.default)
        model = create_model(f"{name}_params", __config__={"extra": "forbid"}, **fields)
        TERMS[name] = Term(
            name,
            fn,
            summary,
            needs_reference,
            tuple(splits),
            model,
            layers,
            trainable,
            full_logits,
            hidden_only,
            teaches,
            before_training,
            after_training,
            draws,
            generated_answers,
            rectify,
            reads_original,
        )
        return fn

    return register


def recipe(
    name: str, summary: str, objective: dict, *, procedure: str | None = None, **settings: Any
) -> None:
    RECIPES[name] = Recipe(name, summary, objective, settings, procedure)


def recipe_procedure(method: str | None) -> str | None:
    """The procedure a recipe runs instead of the training loop, if any."""
    _load_builtin_terms()
    found = RECIPES.get(method or "")
    return found.procedure if found else None


def recipe_train_settings(method: str | None) -> dict[str, Any]:
    """The `train.*` settings a recipe implies (its paper's set-up: rmu's mode=full, sam's
    sam_rho); the config applies each one the user did not set."""
    _load_builtin_terms()
    found = RECIPES.get(method or "")
    return dict(found.settings.get("train", {})) if found else {}


@dataclass(frozen=True)
class WeightedTerm:
    term: Term
    weight: float
    params: dict[str, Any]

    def __call__(self, ctx: StepContext) -> torch.Tensor:
        return self.term.fn(ctx, **self.params)


class Objective:
    """sum_i weight_i * term_i(ctx); each term's unweighted value is reported separately."""

    def __init__(self, terms: list[WeightedTerm]):
        if not terms:
            raise ConfigError("the objective has no terms")
        self.terms = terms
        self._layers: tuple[int, ...] | None = None
        # Per term, values it carries from one micro-step to the next (pdu's dual variable, gru's
        # average retain gradient). Plain floats (checkpoints store them in JSON exactly) or lists
        # of tensors (stored in safetensors), so a resumed run continues them.
        self.state: dict[str, dict[str, Any]] = {t.term.name: {} for t in terms}

    def draws_per_prompt(self) -> int:
        """Answers the batches draw per forget prompt (the most any term asks for; 1 by default)."""
        return max((t.term.draws(**t.params) for t in self.terms if t.term.draws), default=1)

    @property
    def needs_reference(self) -> bool:
        return any(t.term.needs_reference for t in self.terms)

    @property
    def reads_original(self) -> bool:
        """Some term reads the original model's own outputs (not only its before_training models')."""
        return any(t.term.needs_reference and t.term.reads_original for t in self.terms)

    @property
    def reference_splits(self) -> tuple[str, ...]:
        return tuple(sorted({s for t in self.terms if t.term.needs_reference for s in t.term.splits}))

    @property
    def reference_logits(self) -> tuple[str, ...]:
        """Splits whose whole reference logits some term reads (a precomputed reference keeps them)."""
        found = {
            s
            for t in self.terms
            if t.term.needs_reference and t.term.reads_original and t.term.full_logits
            for s in t.term.splits
        }
        return tuple(sorted(found))

    @property
    def reference_is_logprobs(self) -> bool:
        """What the terms read of the original is its response log-probs alone: no whole logits,
        no layer activations, no models of their own (a precomputed reference is then small)."""
        return (
            self.needs_reference
            and not self.reference_logits
            and not any(t.term.layers or t.term.before_training for t in self.terms)
        )

    @property
    def full_logits(self) -> tuple[str, ...]:
        """Splits some term reads whole logits of."""
        return tuple(sorted({s for t in self.terms if t.term.full_logits for s in t.term.splits}))

    def hidden_layers(self, model: torch.nn.Module) -> tuple[int, ...]:
        """Decoder layers whose outputs some term reads."""
        found = {i for t in self.terms if t.term.layers for i in t.term.layers(model, **t.params)}
        return tuple(sorted(found))

    def trainable_filters(self, model: torch.nn.Module) -> list[Callable[[str], bool]]:
        return [t.term.trainable(model, **t.params) for t in self.terms if t.term.trainable]

    @property
    def teaches(self) -> bool:
        """Every term teaches the data (e.g. `unlearn prepare`'s sft): a fine-tuning run."""
        return all(t.term.teaches for t in self.terms)

    def before_training(self, run: RunContext) -> dict[str, torch.nn.Module]:
        """The terms' before_training hooks, once: the models the reference runs beside the original."""
        models: dict[str, torch.nn.Module] = {}
        for t in self.terms:
            if t.term.before_training is not None:
                models.update(t.term.before_training(run, **t.params))
        return models

    def after_training(self, run: RunContext) -> dict[str, Any]:
        """The terms' after_training hooks, once after the last step: {term: what it did}."""
        done = {}
        for t in self.terms:
            if t.term.after_training is not None:
                record = t.term.after_training(run, **t.params)
                if record is not None:
                    done[t.term.name] = record
        return done

    def generated_answers(self) -> dict[str, Any] | None:
        """Settings of the answers some term has the original model generate before training."""
        found = [t.term.generated_answers(**t.params) for t in self.terms if t.term.generated_answers]
        return found[0] if found else None

    @property
    def rectifying(self) -> list[WeightedTerm]:
        """Terms whose gradient only rectifies the others' (gru), kept apart from the update."""
        return [t for t in self.terms if t.term.rectify is not None]

    def weighted(self, values: dict[str, torch.Tensor], names: tuple[str, ...]) -> torch.Tensor:
        """sum of weight * value over the named terms."""
        return sum(t.weight * values[t.term.name] for t in self.terms if t.term.name in names)

    def __call__(
        self, ctx: StepContext, only: tuple[str, ...] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(the weighted sum of the terms, rectifying ones left out; each term's value).
        only: compute just these terms (SAM's pass at perturbed weights)."""
        if self._layers is None:
            self._layers = self.hidden_layers(ctx.model)
        ctx.hidden_layers = self._layers
        ctx.full_logits = self.full_logits
        ctx.hidden_only = bool(self._layers) and all(t.term.hidden_only for t in self.terms)
        terms = [t for t in self.terms if only is None or t.term.name in only]
        values = {}
        for t in terms:
            ctx.state = self.state.setdefault(t.term.name, {})
            values[t.term.name] = t(ctx)
        total = sum(t.weight * values[t.term.name] for t in terms if t.term.rectify is None)
        for name, state in self.state.items():  # logged beside the terms, e.g. pdu_dual
            scalars = {k: v for k, v in state.items() if isinstance(v, int | float)}
            values.update({f"{name}_{k}": torch.tensor(float(v)) for k, v in scalars.items()})
        return total, values

    def rectify(self, update: list, apart: dict[str, list]) -> dict[str, float]:
        """Let each rectifying term rewrite the update's gradients (in place) given its own
        gradient apart[name]; returns what they log."""
        logged: dict[str, float] = {}
        for t in self.rectifying:
            state = self.state.setdefault(t.term.name, {})
            found = t.term.rectify(update, apart[t.term.name], state, **t.params)
            logged.update({f"{t.term.name}_{k}": v for k, v in found.items()})
        return logged

    def describe(self) -> str:
        return " + ".join(f"{t.weight:g}*{t.term.name}" for t in self.terms)


def build_objective(method: str | None, objective: dict | None) -> Objective:
    _load_builtin_terms()
    if objective is None:
        if method not in RECIPES:
            raise ConfigError(
                f"unknown method '{method}'; known recipes: {', '.join(sorted(RECIPES))} "
                "(see `unlearn methods`)"
            )
        objective = RECIPES[method].objective
    terms = []
    for name, spec in objective.items():
        if name not in TERMS:
            raise ConfigError(f"objective: unknown term '{name}'; known terms: {', '.join(sorted(TERMS))}")
        spec = {"weight": spec} if isinstance(spec, int | float) else dict(spec)
        weight = spec.pop("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ConfigError(f"objective.{name}.weight: expected a number, got {truncate(weight)}")
        try:
            params = TERMS[name].params_model.model_validate(spec).model_dump()
        except ValidationError as exc:
            details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"objective.{name}: {details}") from None
        terms.append(WeightedTerm(TERMS[name], float(weight), params))
    if terms and all(t.term.rectify is not None for t in terms):
        names = ", ".join(t.term.name for t in terms)
        raise ConfigError(
            f"objective: {names} only rectify the gradient of other terms; add an unlearning term, "
            f"e.g. objective={{npo: 1, {terms[0].term.name}: 1}}"
        )
    return Objective(terms)


def check_objective(method: str | None, objective: dict | None, source: str) -> None:
    """Fail early, naming the config (file or --set) at fault, on an unknown method or on an
    `objective` that does not build. A recipe's own objective is left to the method: procedures
    (icu, undo) build theirs, or none, themselves."""
    _load_builtin_terms()
    try:
        if objective is not None:
            build_objective(method, objective)
        elif method not in RECIPES:
            build_objective(method, None)  # the error that lists the known recipes
    except ConfigError as exc:
        raise ConfigError(f"{truncate(source, 200)}: {exc}") from None


def _load_builtin_terms() -> None:
    # Importing the term modules registers them; kept lazy to avoid import cycles.
    from lm_unlearn.objectives import terms  # noqa: F401
