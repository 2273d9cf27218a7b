"""The method works, not only runs: tiny data, seconds each."""

import copy
import itertools

import numpy as np
import pytest
import torch

from compgen_sk import (
    AdditiveDecoder,
    EncoderBaseline,
    GenerativeInverter,
    GradientSearch,
    MLPDecoder,
    MLPEncoder,
    ReplayEncoder,
    TransformerDecoder,
)
from compgen_sk.datasets import make_additive
from compgen_sk.inversion import (
    consistency_loss,
    matched_slot_mse,
    recombine_slots,
    sample_recombinations,
    search_latents,
    search_starts,
)
from compgen_sk.modules import (
    AdditiveDecoderModule,
    MLPDecoderModule,
    TransformerDecoderModule,
    interaction_penalty,
    overlap_penalty,
)

SMALL = dict(
    n_slots=2,
    slot_dim=2,
    encoder=MLPEncoder(hidden=(64, 64)),
    decoder=AdditiveDecoder(hidden=(64, 64)),
    batch_size=32,
)


def _small(**decoder_options):
    """SMALL with an additive decoder of these options."""
    return {**SMALL, "decoder": AdditiveDecoder(hidden=(64, 64), **decoder_options)}


@pytest.fixture(scope="module")
def split_data():
    bunch = make_additive(
        800, n_slots=2, slot_dim=2, n_features=32, split="all", random_state=0
    )
    return bunch.data[~bunch.ood], bunch.data[bunch.ood]


@pytest.fixture(scope="module")
def generator(split_data):
    X_id, _ = split_data
    return GenerativeInverter(
        max_epochs=40, search=GradientSearch(steps=50), random_state=0, **SMALL
    ).fit(X_id)


def _mse(a, b):
    return float(np.mean((a - b) ** 2))


def test_search_lowers_ood_reconstruction_error_below_the_encoder(
    generator, split_data
):
    X_id, X_ood = split_data
    assert generator.score(X_id) > 0.9
    encoder_only = _mse(generator.inverse_transform(generator.encode(X_ood)), X_ood)
    searched = _mse(generator.inverse_transform(generator.transform(X_ood)), X_ood)
    assert searched < 0.9 * encoder_only


def _with_search(estimator, **search):
    """A shallow copy of ``estimator`` with a search of its own."""
    return copy.copy(estimator).set_params(search=GradientSearch(**search))


def test_more_search_steps_never_reconstruct_worse(generator, split_data):
    _, X_ood = split_data
    errors = []
    for steps in (0, 10, 50):
        est = _with_search(generator, steps=steps)
        errors.append(_mse(est.inverse_transform(est.transform(X_ood)), X_ood))
    assert errors[0] >= errors[1] >= errors[2]
    # No search is the encoder alone, as are zero steps.
    no_search = copy.copy(generator).set_params(search=None)
    np.testing.assert_array_equal(
        no_search.transform(X_ood), _with_search(generator, steps=0).transform(X_ood)
    )
    np.testing.assert_array_equal(no_search.transform(X_ood), generator.encode(X_ood))


def test_replay_encoder_inverts_the_generator_out_of_domain(generator, split_data):
    X_id, _ = split_data
    # Recombined slots the ID encoder never saw together, rendered by the generator.
    bank = torch.as_tensor(generator.encode(X_id).reshape(-1, 2, 2))
    torch.manual_seed(0)
    z_new = sample_recombinations(bank, 400).numpy()
    x_new = generator.inverse_transform(z_new)
    replay = ReplayEncoder(
        generator,
        max_epochs=20,
        random_state=0,
        encoder=MLPEncoder(hidden=(64, 64)),
        batch_size=32,
    ).fit(X_id)
    # A renderer per slot: replay keeps every slot at its position.
    assert generator.recombination_ == replay.recombination_ == "shuffle"
    replay_error = _mse(replay.transform(x_new), z_new.reshape(400, -1))
    id_encoder_error = _mse(generator.encode(x_new), z_new.reshape(400, -1))
    assert replay_error < 0.25 * id_encoder_error


def test_batched_search_equals_per_image_search():
    torch.manual_seed(0)
    decoder = AdditiveDecoderModule(3, 2, (24,)).eval()
    z_true = torch.randn(16, 3, 2)
    with torch.no_grad():
        x = decoder(z_true)
    z0 = z_true + 0.5 * torch.randn_like(z_true)
    batch_z, batch_loss, _ = search_latents(decoder, x, z0, steps=60, lr=0.05)
    for i in range(16):
        z, loss, _ = search_latents(
            decoder, x[i : i + 1], z0[i : i + 1], steps=60, lr=0.05
        )
        torch.testing.assert_close(z[0], batch_z[i], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(loss[0], batch_loss[i], atol=1e-5, rtol=1e-3)


def test_search_early_stop_is_per_image_and_saves_steps():
    torch.manual_seed(0)
    decoder = AdditiveDecoderModule(2, 2, (16,)).eval()
    z_true = torch.randn(32, 2, 2)
    with torch.no_grad():
        x = decoder(z_true)
    # Half the images start at the answer, half far from it.
    z0 = z_true.clone()
    z0[16:] += torch.randn(16, 2, 2)
    _, loss, n_steps = search_latents(decoder, x, z0, steps=300, lr=0.02, tol=1e-3)
    assert n_steps.min() < n_steps.max()
    assert n_steps[:16].float().mean() < n_steps[16:].float().mean()
    # Images already at the answer stop at once and keep it.
    assert (n_steps[:16] <= 3).all()
    assert loss[:16].max() < 1e-8
    _, _full_loss, full_steps = search_latents(decoder, x, z0, steps=300, lr=0.02)
    assert (full_steps == 300).all()
    assert loss[16:].mean() < 0.1 * ((decoder(z0[16:]) - x[16:]) ** 2).sum(1).mean()


def test_search_zero_steps_returns_the_start():
    decoder = MLPDecoderModule(2, 2, (8,)).eval()
    z0 = torch.randn(4, 2, 2)
    z, _, steps = search_latents(decoder, torch.zeros(4, 8), z0, steps=0, lr=0.1)
    torch.testing.assert_close(z, z0)
    assert (steps == 0).all()


def test_transform_chunks_match_one_batch(generator, split_data):
    _, X_ood = split_data
    X = X_ood[:100]
    whole = _with_search(generator, steps=50, batch_size=512).transform(X)
    chunked = _with_search(generator, steps=50, batch_size=7).transform(X)
    # Rounding differs between batch sizes; where an image's loss is flat it can
    # decide which of two almost equally good points is kept (or the step on
    # which the image stops), so a rare image may end elsewhere in that
    # valley. Its reconstruction error must agree; the slots of almost all
    # images agree exactly.
    same = np.isclose(whole, chunked, atol=1e-4).all(axis=1)
    assert same.mean() >= 0.97

    def errors(slots):
        return ((generator.inverse_transform(slots) - X) ** 2).sum(axis=1)

    np.testing.assert_allclose(errors(whole), errors(chunked), rtol=1e-2, atol=1e-5)


def test_vae_adds_a_kl_term_weighted_by_kl_weight(split_data):
    X_id, _ = split_data
    history = {}
    for weight in (0.0, 1.0):
        est = GenerativeInverter(
            kl_weight=weight, max_epochs=3, search=None, random_state=0, **SMALL
        ).fit(X_id)
        history[weight] = est.net_.history
    batch = history[1.0][-1, "batches", -1]
    # loss = reconstruction + kl_weight * KL per feature.
    assert batch["train_loss"] == pytest.approx(
        batch["train_reconstruction"] + batch["train_kl"], rel=1e-4
    )
    assert history[0.0][-1, "batches", -1]["train_loss"] == pytest.approx(
        history[0.0][-1, "batches", -1]["train_reconstruction"], rel=1e-4
    )
    # The KL term pulls the posterior towards the prior.
    assert (
        history[1.0][-1, "batches", -1]["train_kl"]
        < history[0.0][-1, "batches", -1]["train_kl"]
    )


def test_vae_encoder_is_deterministic_at_inference(split_data):
    X_id, _ = split_data
    est = GenerativeInverter(
        kl_weight=1.0, max_epochs=2, search=None, random_state=0, **SMALL
    )
    est.fit(X_id)
    np.testing.assert_array_equal(est.transform(X_id[:20]), est.transform(X_id[:20]))
    # kl_weight=None is no VAE: no KL term at all.
    plain = GenerativeInverter(max_epochs=1, search=None, random_state=0, **SMALL)
    assert "train_kl" not in plain.fit(X_id).net_.history[-1, "batches", -1]


def test_interaction_penalty_is_zero_for_one_slot_per_pixel_and_maximal_for_uniform():
    one_hot = torch.zeros(3, 4, 10, 2)
    one_hot[..., 0] = 1.0
    torch.testing.assert_close(interaction_penalty(one_hot), torch.zeros(3))
    uniform = torch.full((3, 4, 10, 2), 0.5)
    # (1 - sum a^2) / 2 = 0.25 per head, summed over 4 heads.
    torch.testing.assert_close(interaction_penalty(uniform), torch.full((3,), 1.0))


def test_transformer_penalty_matches_its_attention():
    torch.manual_seed(0)
    decoder = TransformerDecoderModule(2, 3, (5,), embed_dim=8, n_heads=2, n_layers=1)
    z = torch.randn(4, 2, 3)
    out, penalty = decoder.forward_with_penalty(z)
    torch.testing.assert_close(out, decoder(z))
    block = decoder.blocks[0]
    _, weights = block.attention(
        block.norm_query(decoder.queries.expand(4, -1, -1)),
        decoder.embed_slots(z),
        decoder.embed_slots(z),
        average_attn_weights=False,
    )
    torch.testing.assert_close(penalty, interaction_penalty(weights))


def test_interaction_penalty_lowers_the_penalty_under_training(split_data):
    X_id, _ = split_data
    final = {}
    for weight in (0.0, 1.0):
        est = GenerativeInverter(
            decoder=TransformerDecoder(
                embed_dim=16, n_heads=2, n_layers=1, interaction_penalty=weight
            ),
            max_epochs=6,
            search=None,
            random_state=0,
            n_slots=2,
            slot_dim=2,
            lr=3e-3,
        ).fit(X_id)
        penalties = [b["train_interaction"] for b in est.net_.history[-1, "batches"]]
        final[weight] = np.mean(penalties)
        first = np.mean(
            [b["train_interaction"] for b in est.net_.history[0, "batches"]]
        )
        if weight:
            assert final[weight] < first
    assert final[1.0] < 0.5 * final[0.0]


def test_overlap_penalty_is_zero_for_disjoint_renderings_and_half_for_equal_ones():
    disjoint = torch.zeros(3, 2, 1, 4, 4)
    disjoint[:, 0, :, :2] = torch.randn(3, 1, 2, 4)
    disjoint[:, 1, :, 2:] = torch.randn(3, 1, 2, 4)
    torch.testing.assert_close(overlap_penalty(disjoint), torch.zeros(3))
    same = torch.randn(3, 1, 6).expand(3, 2, 6)
    # sum |r|^2 over pairs / sum over both slots = 1 / 2 for K = 2
    torch.testing.assert_close(overlap_penalty(same), torch.full((3,), 0.5))
    three = torch.randn(2, 1, 6).expand(2, 3, 6)  # at most (K - 1) / 2
    torch.testing.assert_close(overlap_penalty(three), torch.full((2,), 1.0))
    # no slot drawing anything is no overlap, not NaN
    torch.testing.assert_close(overlap_penalty(torch.zeros(2, 2, 5)), torch.zeros(2))


def test_additive_penalty_is_computed_only_where_asked():
    torch.manual_seed(0)
    decoder = AdditiveDecoderModule(3, 2, (3, 6, 6), renderer="broadcast", overlap=True)
    z = torch.randn(4, 3, 2)
    out, penalty = decoder.forward_with_penalty(z)
    torch.testing.assert_close(out, decoder(z))
    torch.testing.assert_close(penalty, overlap_penalty(decoder.render_slots(z)))
    assert penalty.shape == (4,) and (penalty >= 0).all()
    decoder.overlap = False
    out, penalty = decoder.forward_with_penalty(z)
    assert penalty is None
    torch.testing.assert_close(out, decoder(z))
    # half precision sums over the pixels in float32, so they do not overflow
    big = torch.full((2, 2, 3 * 64 * 64), 60.0, dtype=torch.float16)
    assert torch.isfinite(overlap_penalty(big)).all()


def test_overlap_is_weighed_by_overlap_penalty_and_absent_at_zero(split_data):
    X_id, _ = split_data
    params = dict(max_epochs=2, search=None, random_state=0, n_jobs=1)
    plain = GenerativeInverter(**params, **SMALL).fit(X_id)
    assert "train_interaction" not in plain.net_.history[-1, "batches"][0]
    assert not plain.decoder_.decoder.overlap
    weighed = GenerativeInverter(**params, **_small(overlap_penalty=0.5)).fit(X_id)
    assert weighed.decoder_.decoder.overlap
    assert "train_interaction" in weighed.net_.history[-1, "batches"][0]
    assert not np.array_equal(plain.transform(X_id), weighed.transform(X_id))


def test_overlap_penalty_lowers_the_overlap_of_additive_renderings(split_data):
    X_id, _ = split_data
    overlap = {}
    for weight in (0.0, 1.0):
        est = GenerativeInverter(
            max_epochs=6,
            search=None,
            random_state=0,
            n_jobs=1,
            **_small(overlap_penalty=weight),
        ).fit(X_id)
        z = torch.as_tensor(est.transform(X_id)).view(len(X_id), 2, -1)
        with torch.no_grad():
            renderings = est.decoder_.decoder.render_slots(z)  # standardized
        overlap[weight] = float(overlap_penalty(renderings).mean())
    assert overlap[1.0] < 0.5 * overlap[0.0]


def test_penalty_epochs_weighs_the_penalty_only_in_the_first_epochs(split_data):
    X_id, _ = split_data
    est = GenerativeInverter(
        max_epochs=4,
        tol=None,
        search=None,
        random_state=0,
        n_jobs=1,
        **_small(overlap_penalty=0.5, penalty_epochs=2),
    ).fit(X_id)
    for epoch, row in enumerate(est.net_.history, start=1):
        weight = 0.5 if epoch <= 2 else 0.0
        for batch in row["batches"]:
            assert batch["train_interaction"] > 0  # still recorded
            expected = (
                batch["train_reconstruction"] + weight * batch["train_interaction"]
            )
            assert batch["train_loss"] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="penalty_epochs"):
        GenerativeInverter(decoder=AdditiveDecoder(penalty_epochs=0)).fit(X_id)


def test_consistency_loss_starts_after_warmup_and_trains_only_the_encoder(split_data):
    X_id, _ = split_data
    est = GenerativeInverter(
        consistency_weight=1.0,
        consistency_warmup=2,
        max_epochs=4,
        search=None,
        random_state=0,
        **SMALL,
    ).fit(X_id)
    epochs_with_term = [
        "train_consistency" in row["batches"][0] for row in est.net_.history
    ]
    assert epochs_with_term == [False, False, True, True]

    module = est.net_.module_
    module.zero_grad()
    slots = module.encoder(torch.as_tensor(X_id[:32]))
    consistency_loss(module.encoder, module.decoder, slots).backward()
    assert all(p.grad is None or not p.grad.any() for p in module.decoder.parameters())
    assert any(p.grad is not None and p.grad.any() for p in module.encoder.parameters())


def test_matched_slot_mse_ignores_slot_order():
    torch.manual_seed(0)
    target = torch.randn(6, 3, 4)
    permuted = target[:, [2, 0, 1]]
    assert matched_slot_mse(permuted, target).item() == pytest.approx(0.0, abs=1e-7)
    many = torch.randn(2, 8, 3)  # more slots than enumerated: Hungarian path
    assert matched_slot_mse(many[:, torch.randperm(8)], many).item() == pytest.approx(
        0.0, abs=1e-7
    )
    assert matched_slot_mse(target + 1.0, target).item() == pytest.approx(1.0)


def _brute_force_matched_mse(pred, target):
    """Mean over samples of the lowest slot-averaged squared error over every
    permutation of the predicted slots, and the best permutation per sample."""
    n_slots = pred.shape[1]
    perms = list(itertools.permutations(range(n_slots)))
    errors = np.stack(
        [((pred[:, list(p)] - target) ** 2).mean(axis=(1, 2)) for p in perms], axis=1
    )  # (n, P)
    best = errors.argmin(axis=1)
    return errors.min(axis=1).mean(), [perms[b] for b in best]


@pytest.mark.parametrize("n_slots", [2, 3, 4, 8])
def test_matched_slot_mse_is_the_best_permutation_and_passes_gradient(n_slots):
    # 8 slots: more than the enumerated permutations, the Hungarian path.
    n, dim = (3, 2) if n_slots == 8 else (40, 3)
    generator = torch.Generator().manual_seed(n_slots)
    pred = torch.randn(n, n_slots, dim, dtype=torch.float64, generator=generator)

    def noise(rows):
        return torch.randn(rows, n_slots, dim, dtype=torch.float64, generator=generator)

    # Half the samples: a noisy permutation of the predictions; the others
    # unrelated targets.
    target = pred[:, torch.randperm(n_slots, generator=generator)] + 0.3 * noise(n)
    target[: n // 2] = noise(n // 2)
    expected, best = _brute_force_matched_mse(pred.numpy(), target.numpy())
    pred.requires_grad_(True)
    loss = matched_slot_mse(pred, target)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    # The gradient of the mean squared error of the matched pairs.
    grad = torch.zeros_like(pred)
    for i, perm in enumerate(best):
        grad[i, list(perm)] = 2 * (pred[i, list(perm)] - target[i]) / pred.numel()
    torch.testing.assert_close(pred.grad, grad.detach())
    assert pred.grad.abs().sum() > 0


def test_recombined_slots_keep_each_slot_marginal():
    slots = torch.arange(24.0).view(8, 3, 1)
    torch.manual_seed(0)
    mixed = recombine_slots(slots, "shuffle")
    for k in range(3):
        assert sorted(mixed[:, k, 0].tolist()) == sorted(slots[:, k, 0].tolist())
    assert not torch.equal(mixed, slots)
    pooled = recombine_slots(slots, "pool")
    assert set(pooled.flatten().tolist()) <= set(slots.flatten().tolist())


def test_encoder_baseline_does_not_generalize_like_search(generator, split_data):
    """The non-generative reference reconstructs OOD worse than search does."""
    X_id, X_ood = split_data
    baseline = EncoderBaseline(
        max_epochs=40,
        random_state=0,
        **{**SMALL, "decoder": MLPDecoder(hidden=(64, 64))},
    ).fit(X_id)
    assert baseline.score(X_id) > 0.9
    assert baseline.score(X_ood) < generator.score(X_ood)


def test_consistency_loss_cannot_be_lowered_by_shrinking_the_slots():
    """Normalized by the slots' variance: collapse to a point earns nothing."""
    torch.manual_seed(0)
    decoder = AdditiveDecoderModule(2, 3, (10,)).eval()

    def collapsed_encoder(x):
        return torch.zeros(len(x), 2, 3)

    slots = torch.randn(32, 2, 3)
    torch.manual_seed(1)
    loss = consistency_loss(collapsed_encoder, decoder, slots)
    torch.manual_seed(1)
    shrunk = consistency_loss(collapsed_encoder, decoder, 0.01 * slots)
    assert loss.item() == pytest.approx(shrunk.item(), rel=1e-4)
    assert loss.item() > 0.9  # a constant encoder explains none of the variance


def _per_image_sse(estimator, X):
    X_hat = estimator.inverse_transform(estimator.transform(X))
    return ((X_hat - X) ** 2).reshape(len(X), -1).sum(axis=1)


def test_multi_start_search_never_ends_worse_than_single_start(generator, split_data):
    _, X_ood = split_data
    one = _with_search(generator, restarts=1, steps=30)
    four = _with_search(generator, restarts=4, steps=30)
    single, multi = _per_image_sse(one, X_ood), _per_image_sse(four, X_ood)
    assert np.all(multi <= single * (1 + 1e-4) + 1e-7)
    assert multi.mean() < single.mean()
    # A function of X: the same starts at every call.
    np.testing.assert_array_equal(four.transform(X_ood), four.transform(X_ood))


def test_search_starts_are_the_guess_and_slot_recombinations():
    z = torch.arange(24.0).reshape(6, 2, 2)
    bank = -torch.arange(12.0).reshape(3, 2, 2)
    starts = search_starts(z, 4, bank)
    assert starts.shape == (4, 6, 2, 2)
    torch.testing.assert_close(starts[0], z)
    # Start j replaces the j-th non-empty subset of slots by bank[j - 1].
    torch.testing.assert_close(starts[1][:, 0], bank[0, 0].expand(6, 2))
    torch.testing.assert_close(starts[1][:, 1], z[:, 1])
    torch.testing.assert_close(starts[2][:, 0], z[:, 0])
    torch.testing.assert_close(starts[2][:, 1], bank[1, 1].expand(6, 2))
    torch.testing.assert_close(starts[3], bank[2].expand(6, 2, 2))
    # An image's starts do not depend on the images searched with it.
    torch.testing.assert_close(search_starts(z[2:3], 4, bank), starts[:, 2:3])
    assert search_starts(z, 1, bank).shape == (1, 6, 2, 2)


def test_multi_start_transform_does_not_depend_on_the_batch(generator, split_data):
    _, X_ood = split_data
    est = _with_search(generator, restarts=3, steps=20)
    assert est.start_slots_.shape == (64, 2, 2)
    whole = est.transform(X_ood[:40])

    def agree(a, b):  # rounding that differs by batch size may move an image
        return np.mean(np.all(np.isclose(a, b, atol=1e-4), axis=1)) >= 0.95

    assert agree(est.transform(X_ood[:8]), whole[:8])
    est.set_params(search__batch_size=7)
    assert agree(est.transform(X_ood[:40]), whole)


def test_search_restarts_is_validated_at_transform(generator, split_data):
    est = _with_search(generator, restarts=0)
    with pytest.raises(ValueError, match="restarts"):
        est.transform(split_data[1][:4])
