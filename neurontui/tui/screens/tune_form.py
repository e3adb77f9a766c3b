"""`t`: what to tune — the latency bound, the modes, batches and requests in flight, the budget.

Every field is checked with the rules `neurontui tune` applies to its flags (tune/slo.py,
tuning.parse_points, tune/search.check_budget), and a bad value shows its one-line reason under
its field; nothing starts until all of them are right.
"""
from __future__ import annotations

import math
from dataclasses import replace

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from workloads.config import WorkloadConfig

from ...format import format_bound
from ...tune.search import Budget, check_budget
from ...tune.slo import TuneUsageError, parse_slo
from ...tuning import MIN_STEP_SECONDS, TunePlan, parse_points

FIELDS = {"slo": "bound", "modes": "modes", "batches": "batches", "concurrency": "in flight", "budget": "budget s"}
FLAG_FIELDS = {"--slo": "slo", "--modes": "modes", "--batches": "batches", "--concurrency": "concurrency",
               "--budget": "budget"}
DEFAULT_BOUND_SECONDS = 0.015
FORM_BUDGET_SECONDS = 120  # the CLI's 300 s default is long to sit and watch
BOUND_OVER_CURRENT_P99 = 2.0  # the suggested bound leaves the current run's tail this much room
SEARCHED_MODES = ("single", "dp")  # pipeline stages cost a point each and rarely win a latency bound


def suggested_bound(current_p99: float | None) -> float:
    """Twice the current run's p99, to two significant digits (7.43 ms -> 7.4 ms); 15 ms before it has one."""
    if current_p99 is None or not current_p99 > 0:
        return DEFAULT_BOUND_SECONDS
    wanted = current_p99 * BOUND_OVER_CURRENT_P99
    magnitude = 10.0 ** (math.floor(math.log10(wanted)) - 1)
    return round(wanted / magnitude) * magnitude


def form_defaults(base: WorkloadConfig, current_p99: float | None) -> dict[str, str]:
    """What the form starts with: the suggested bound, the modes this backend runs, batches 1 and 4."""
    modes = [mode for mode in SEARCHED_MODES if not replace(base, mode=mode).validate()] or [base.mode]
    return {"slo": f"p99={format_bound(suggested_bound(current_p99))}", "modes": ",".join(modes),
            "batches": "1,4", "concurrency": "1", "budget": str(FORM_BUDGET_SECONDS)}


def build_plan(base: WorkloadConfig, values: dict[str, str]) -> tuple[TunePlan | None, dict[str, str]]:
    """The plan the fields ask for, or None and each bad field's reason (its flag name left off)."""
    errors: dict[str, str] = {}

    def refuse(exc: TuneUsageError, field: str) -> None:
        flag, _, reason = str(exc).partition(": ")
        if flag in FLAG_FIELDS:
            errors.setdefault(FLAG_FIELDS[flag], reason)
        else:
            errors.setdefault(field, str(exc))

    slo = points = seconds = None
    try:
        slo = parse_slo(values["slo"])
    except TuneUsageError as exc:
        refuse(exc, "slo")
    try:
        points = parse_points(values["modes"], values["batches"], values["concurrency"])
    except TuneUsageError as exc:
        refuse(exc, "modes")
    try:
        seconds = float(values["budget"])
    except ValueError:
        errors["budget"] = f"{values['budget'].strip()!r} is not a number of seconds"
    else:
        if not (seconds > 0 and math.isfinite(seconds)):
            errors["budget"] = "the budget must be a positive number of seconds"
    if slo is None or points is None or "budget" in errors:
        return None, errors
    plan = TunePlan(replace(base, until_stable=False), slo, points, Budget(seconds=seconds))
    if problem := plan.problem():
        errors["modes"] = problem
    try:
        check_budget(plan.budget, len(points), MIN_STEP_SECONDS)
    except TuneUsageError as exc:
        refuse(exc, "budget")
    return (None, errors) if errors else (plan, {})


class TuneForm(ModalScreen[TunePlan | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "cancel")]

    def __init__(self, base: WorkloadConfig, values: dict[str, str]) -> None:
        super().__init__()
        self.base = base
        self.values = values

    def compose(self) -> ComposeResult:
        with Vertical(id="tune-form") as form:
            form.border_title = f"tune {self.base.model} {self.base.backend}"
            for name, label in FIELDS.items():
                with Horizontal(classes="tune-field"):
                    yield Label(label)
                    yield Input(self.values[name], id=f"tune-{name}", compact=True)
                yield Static("", id=f"tune-{name}-error", classes="tune-error")
            yield Static("enter starts · tab next field · escape cancels", classes="tune-keys")

    def on_mount(self) -> None:
        self.query_one("#tune-slo", Input).focus()

    def errors(self) -> dict[str, str]:
        """The reason shown under each field now (empty when the field is fine)."""
        return {name: str(self.query_one(f"#tune-{name}-error", Static).content) for name in FIELDS}

    @on(Input.Submitted)
    def submit(self) -> None:
        values = {name: self.query_one(f"#tune-{name}", Input).value for name in FIELDS}
        plan, errors = build_plan(self.base, values)
        for name in FIELDS:
            line = self.query_one(f"#tune-{name}-error", Static)
            line.update(errors.get(name, ""))
            line.set_class(name in errors, "-shown")
        if plan is not None:
            self.dismiss(plan)
