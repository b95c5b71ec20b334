"""Muon's math (model/muon.py): the Newton-Schulz orthogonalisation and MuonAdamW's two update rules, checked against
an SVD, against torch.optim.AdamW, and across a save and load of the optimizer's state."""
import copy

import pytest
import torch

from model.muon import MuonAdamW, muon_scale, newton_schulz


def matrix(rows: int, cols: int, singular_values: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    g = torch.randn(rows, cols, generator=generator)
    if singular_values is None:
        return g
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    return u @ torch.diag(singular_values) @ vh


@pytest.mark.parametrize("shape", [(192, 64), (64, 256), (512, 32)])
def test_singular_values_land_in_a_band_around_one(shape):
    # A random rectangular matrix is well conditioned: every singular value is moved into [0.68, 1.13]
    g = matrix(*shape)
    s = torch.linalg.svdvals(newton_schulz(g))
    assert s.min() > 0.6 and s.max() < 1.2, (s.min(), s.max())
    # ... which makes it close to the exact orthogonal factor U·Vᵀ, and keeps the input's orientation and scale-free
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    assert (newton_schulz(g) - u @ vh).norm() / (u @ vh).norm() < 0.25
    torch.testing.assert_close(newton_schulz(1000 * g), newton_schulz(g), rtol=1e-4, atol=1e-5)


def test_ill_conditioned_input_keeps_its_singular_vectors_and_no_value_grows_past_the_band():
    # Singular values from 1 down to 1e-3. The iteration is an odd polynomial of G: it reshapes S and keeps U and V,
    # so the output is diagonal in the input's singular basis. Directions down to 0.5% of the strongest reach the
    # band (5 steps of slope 3.4445 at zero), none overshoots it, and the weakest stay short.
    values = torch.logspace(0, -3, 64)
    g = matrix(64, 64, values)
    u, _, vh = torch.linalg.svd(g)
    in_basis = u.T @ newton_schulz(g) @ vh.T
    assert (in_basis - torch.diag(torch.diagonal(in_basis))).abs().max() < 1e-4
    new_values = torch.diagonal(in_basis)
    assert new_values.max() < 1.25 and (new_values[values > 0.005] > 0.6).all()
    assert new_values[-1] < 0.6


def test_output_dtype_is_the_input_dtype_and_zero_stays_zero():
    g = matrix(32, 16).double()
    assert newton_schulz(g).dtype == torch.float64
    assert torch.equal(newton_schulz(torch.zeros(8, 4)), torch.zeros(8, 4))  # a zero gradient moves nothing
    assert muon_scale(torch.Size([192, 64])) == pytest.approx(3 ** 0.5) and muon_scale(torch.Size([64, 256])) == 1.0


def two_groups(seed: int = 0) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    torch.manual_seed(seed)
    matrices = [torch.nn.Parameter(torch.randn(48, 16) * 0.02), torch.nn.Parameter(torch.randn(16, 64) * 0.02)]
    others = [torch.nn.Parameter(torch.randn(100, 16) * 0.02), torch.nn.Parameter(torch.ones(16))]
    return matrices, others


def optimizer_for(matrices, others) -> MuonAdamW:
    return MuonAdamW([{"params": matrices, "lr": 0.02, "use_muon": True},
                      {"params": others[:1], "lr": 3e-3, "weight_decay": 0.1},
                      {"params": others[1:], "lr": 3e-3, "weight_decay": 0.0}],
                     lr=3e-3, betas=(0.9, 0.95), eps=1e-8, momentum=0.95)


def gradients(step: int, params) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1000 + step)
    return [torch.randn(p.shape, generator=generator) * 0.01 for p in params]


def test_adamw_groups_equal_torch_adamw_and_muon_groups_follow_the_definition():
    matrices, others = two_groups()
    ref_matrices, ref_others = copy.deepcopy(matrices), copy.deepcopy(others)
    optimizer = optimizer_for(matrices, others)
    adamw = torch.optim.AdamW([{"params": ref_others[:1], "weight_decay": 0.1},
                               {"params": ref_others[1:], "weight_decay": 0.0}],
                              lr=3e-3, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    buffers = [torch.zeros_like(m) for m in matrices]
    for step in range(3):
        grads = gradients(step, matrices + others)
        for p, g in zip(matrices + others, grads):
            p.grad = g.clone()
        for p, g in zip(ref_others, grads[2:]):
            p.grad = g.clone()
        optimizer.step()
        adamw.step()
        with torch.no_grad():
            for ref, buf, g in zip(ref_matrices, buffers, grads):
                buf.mul_(0.95).add_(g, alpha=0.05)  # momentum, then Nesterov's look-ahead, orthogonalised and scaled
                ref -= 0.02 * max(1, ref.shape[0] / ref.shape[1]) ** 0.5 * newton_schulz(0.05 * g + 0.95 * buf)
    for p, ref in zip(others, ref_others):
        assert torch.equal(p, ref)  # the same arithmetic as torch's AdamW, operation for operation
    for p, ref in zip(matrices, ref_matrices):
        torch.testing.assert_close(p, ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(optimizer.state[matrices[0]]["momentum_buffer"], buffers[0])
    for group, p in zip(optimizer.param_groups[:1], matrices):
        assert group["params"][0] is p and "exp_avg" not in optimizer.state[p]  # Muon keeps a momentum only


def test_state_saved_and_loaded_continues_exactly():
    matrices, others = two_groups()
    optimizer = optimizer_for(matrices, others)
    for step in range(2):
        for p, g in zip(matrices + others, gradients(step, matrices + others)):
            p.grad = g
        optimizer.step()
    saved_params, saved_state = copy.deepcopy(matrices + others), copy.deepcopy(optimizer.state_dict())
    for step in (2, 3):  # the uninterrupted run
        for p, g in zip(matrices + others, gradients(step, matrices + others)):
            p.grad = g
        optimizer.step()

    resumed = [torch.nn.Parameter(p.detach().clone()) for p in saved_params]
    restored = optimizer_for(resumed[:2], resumed[2:])
    restored.load_state_dict(saved_state)
    assert "momentum_buffer" in restored.state[resumed[0]] and restored.state[resumed[2]]["step"] == 2
    for step in (2, 3):
        for p, g in zip(resumed, gradients(step, resumed)):
            p.grad = g
        restored.step()
    assert all(torch.equal(a, b) for a, b in zip(resumed, matrices + others))


def test_a_muon_group_takes_matrices_only():
    with pytest.raises(ValueError, match="not a matrix"):
        MuonAdamW([{"params": [torch.nn.Parameter(torch.ones(4))], "use_muon": True}], lr=1e-3, betas=(0.9, 0.95),
                  eps=1e-8, momentum=0.95)
