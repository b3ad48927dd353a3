"""Bad inputs of circuits and compiled circuit ops in ``docs/errors.md`` (``error_cases.py``
imports this file, so these cases register in the same ``CASES`` table)."""
from __future__ import annotations

import torch

from error_cases import case
from qiadapters import Circuit


@case
def case_circuit_layout(tmp):
    return (lambda: Circuit.from_layout("spiral", 4)), None


@case
def case_circuit_gate(tmp):
    return (lambda: Circuit.pyramid(4, gate="cnot")), None


@case
def case_circuit_one_qubit(tmp):
    return (lambda: Circuit.pyramid(1)), None


@case
def case_circuit_wire_range(tmp):
    return (lambda: Circuit.from_gates(3, [(0, 3)])), None


@case
def case_circuit_same_wire(tmp):
    return (lambda: Circuit.from_gates(3, [(1, 1)])), None


@case
def case_circuit_theta_shape(tmp):
    return (lambda: Circuit.pyramid(4).hamming_block(torch.zeros(5), 1)), None


@case
def case_circuit_theta_nan(tmp):
    theta = torch.zeros(6)
    theta[2] = float("nan")
    return (lambda: Circuit.pyramid(4).hamming_block(theta, 1)), None


@case
def case_circuit_theta_int(tmp):
    return (lambda: Circuit.pyramid(4).hamming_block(torch.zeros(6, dtype=torch.long), 1)), None


@case
def case_circuit_order_too_big(tmp):
    return (lambda: Circuit.pyramid(4).hamming_block(torch.zeros(6), 5)), None


@case
def case_compile_dtype(tmp):
    return (lambda: Circuit.pyramid(4).compile(dtype=torch.int32)), None


@case
def case_compile_blocks(tmp):
    return (lambda: Circuit.pyramid(4).compile(blocks=0)), None


@case
def case_compiled_theta_shape(tmp):
    op = Circuit.pyramid(4).compile(blocks=2)
    return (lambda: op(torch.zeros(3, 6))), None
