"""Which variant a call hears: weighted, deterministic and sticky per caller number.

A caller's bucket is the first 64 bits of SHA-256("<experiment id>:<E.164 number>") read as
a fraction in [0, 1); the variants own consecutive slices of [0, 1) in proportion to their
weights, in the order of their ids. The same number therefore hears the same variant on
every call of the experiment's life, and each experiment draws its own buckets (a caller in
A of one experiment is not more likely to be in A of the next). A call without a caller
number (a web call, a withheld number) is bucketed by its call id: weighted, but sticky only
within that call.

Nothing here touches the database: `ExperimentPlan` is the plain data the call's start loads
(experiments.selectors.experiment_plan) and `assign` picks from it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from tenants.validators import normalize_e164


@dataclass(frozen=True)
class VariantPlan:
    id: int
    name: str
    weight: int
    general_prompt: str
    begin_message: str
    custom_instructions: str
    dialog_engine: str = ""            # "" keeps the agent's
    elevenlabs_voice_id: str = ""      # "" keeps the agent's


@dataclass(frozen=True)
class ExperimentPlan:
    """A running experiment of an agent, as the call's start needs it."""
    experiment_id: int
    variants: tuple[VariantPlan, ...]


@dataclass(frozen=True)
class Assignment:
    """The variant a call was given. `sticky_key` is what it was bucketed by: the caller's
    E.164 number, "call:<call id>" when the call had none, or "recorded" when the call's row
    already held its variant (a reconnect)."""
    experiment_id: int
    variant_id: int
    variant_name: str
    elevenlabs_voice_id: str = ""
    sticky_key: str = ""


def caller_key(number: str | None) -> str | None:
    """The caller's number as E.164 ("+49 151 1234 5678" -> "+4915112345678"), None when it is none."""
    if not isinstance(number, str) or not number.strip():
        return None
    try:
        return normalize_e164(number.strip())
    except ValidationError:
        return None


def bucket(experiment_id: int, key: str) -> float:
    """A fraction in [0, 1) fixed by the experiment and the caller's key."""
    digest = hashlib.sha256(f"{experiment_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


def pick(plan: ExperimentPlan, key: str) -> VariantPlan:
    """The variant whose slice of [0, 1) holds the key's bucket (slices in proportion to weights)."""
    variants = sorted(plan.variants, key=lambda v: v.id)
    total = sum(v.weight for v in variants)
    point = bucket(plan.experiment_id, key) * total
    edge = 0
    for variant in variants:
        edge += variant.weight
        if point < edge:
            return variant
    return variants[-1]


def assign(plan: ExperimentPlan, *, caller_number: str | None, call_id: str) -> tuple[VariantPlan, str]:
    """The variant for a call and the key it was bucketed by (see the module docstring)."""
    key = caller_key(caller_number) or f"call:{call_id}"
    return pick(plan, key), key
