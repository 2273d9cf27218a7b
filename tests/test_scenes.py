"""make_object_scenes: textured objects on photographed backgrounds, held-out pairs."""

import socket

import numpy as np
import pandas as pd
import pytest
import torch

from compgen_sk import (
    GenerativeInverter,
    GradientSearch,
    MaskedDecoder,
    ReplayEncoder,
    SlotProbe,
    TransformerDecoder,
)
from compgen_sk.datasets import make_object_scenes
from compgen_sk.datasets._scenes import (
    BACKGROUNDS,
    OBJECTS,
    background_images,
    latin_square_holdout,
    render_scenes,
)

SIZE = 16


@pytest.fixture(scope="module")
def scenes():
    return make_object_scenes(600, image_size=SIZE, random_state=0)


def test_bunch_shapes_dtypes_and_concept_table(scenes):
    assert scenes.images.shape == (600, 3, SIZE, SIZE)
    assert scenes.images.dtype == np.float32
    assert 0 <= scenes.images.min() and scenes.images.max() <= 1
    assert scenes.data.shape == (600, 3 * SIZE * SIZE)
    assert scenes.latents.shape == (600, 2, 4)
    assert list(scenes.concepts.columns) == [
        "object_identity",
        "object_x",
        "object_y",
        "object_size",
        "background_identity",
    ]
    for column in ("object_identity", "background_identity"):
        assert isinstance(scenes.concepts[column].dtype, pd.CategoricalDtype)
        assert len(scenes.concepts[column].cat.categories) == 8
    assert scenes.exchangeable_slots is False
    # The last true slot is the background the object occludes.
    assert scenes.background_slot is True
    assert scenes.held_out.shape == (len(OBJECTS), len(BACKGROUNDS))
    # The latents hold the concepts: identities as indices, then the pose.
    codes = scenes.concepts["object_identity"].cat.codes.to_numpy()
    np.testing.assert_array_equal(scenes.latents[:, 0, 0], codes)
    np.testing.assert_allclose(
        scenes.latents[:, 0, 1:],
        scenes.concepts[["object_x", "object_y", "object_size"]],
    )
    np.testing.assert_array_equal(
        scenes.latents[:, 1, 0], scenes.concepts["background_identity"].cat.codes
    )
    np.testing.assert_array_equal(scenes.latents[:, 1, 1:], 0)


def test_latin_square_holds_out_as_many_pairs_of_every_object_and_background():
    for n_held_out in (1, 2, 3):
        held_out = latin_square_holdout(n_held_out, 8, random_state=5)
        assert held_out.sum() == 8 * n_held_out
        np.testing.assert_array_equal(held_out.sum(axis=0), n_held_out)
        np.testing.assert_array_equal(held_out.sum(axis=1), n_held_out)


def test_every_object_and_background_is_in_domain_and_no_ood_pair_is(scenes):
    identity = scenes.concepts["object_identity"].cat.codes.to_numpy()
    background = scenes.concepts["background_identity"].cat.codes.to_numpy()
    pairs_ood = scenes.held_out[identity, background]
    np.testing.assert_array_equal(pairs_ood, scenes.ood)
    in_domain = ~scenes.ood
    assert set(identity[in_domain]) == set(range(8))
    assert set(background[in_domain]) == set(range(8))
    # A quarter of the pairs is held out, so about a quarter of the scenes.
    assert 0.18 < scenes.ood.mean() < 0.32
    seen = set(zip(identity[in_domain], background[in_domain]))
    assert not seen & set(zip(identity[scenes.ood], background[scenes.ood]))


@pytest.mark.parametrize("split, ood", [("id", False), ("ood", True)])
def test_split_keeps_the_scenes_asked_for(split, ood):
    part = make_object_scenes(120, image_size=SIZE, split=split, random_state=0)
    assert len(part.images) == 120
    assert (part.ood == ood).all()


def test_same_random_state_same_scenes_and_design_seed_fixes_the_pairs():
    a = make_object_scenes(50, image_size=SIZE, random_state=3)
    b = make_object_scenes(50, image_size=SIZE, random_state=3)
    np.testing.assert_array_equal(a.images, b.images)
    pd.testing.assert_frame_equal(a.concepts, b.concepts)
    c = make_object_scenes(50, image_size=SIZE, random_state=4)
    assert not np.array_equal(a.images, c.images)
    np.testing.assert_array_equal(a.held_out, c.held_out)
    other = make_object_scenes(50, image_size=SIZE, design_seed=1, random_state=3)
    assert not np.array_equal(a.held_out, other.held_out)


def test_the_object_occludes_the_background_where_it_stands():
    pose = np.array([[[0.5, 0.5, 0.5]]])
    image = render_scenes(np.array([[0]]), np.array([0]), pose, 32)[0]
    background = background_images(32)[0]
    # The disk covers the centre, not the corners.
    assert not np.allclose(image[:, 14:18, 14:18], background[:, 14:18, 14:18])
    np.testing.assert_array_equal(image[:, :4, :4], background[:, :4, :4])


def test_a_second_object_is_drawn_over_the_first():
    pose = np.array([[[0.5, 0.5, 0.6], [0.5, 0.5, 0.6]]])
    both = render_scenes(np.array([[0, 1]]), np.array([2]), pose, 32)
    second = render_scenes(np.array([[1]]), np.array([2]), pose[:, 1:], 32)
    np.testing.assert_allclose(both[:, :, 16, 16], second[:, :, 16, 16])


def test_two_objects_have_their_own_columns_and_slots():
    two = make_object_scenes(80, n_objects=2, image_size=SIZE, random_state=0)
    assert two.latents.shape == (80, 3, 4)
    assert "object0_identity" in two.concepts and "object1_size" in two.concepts
    identity = two.latents[:, :2, 0].astype(int)
    background = two.latents[:, 2, 0].astype(int)
    expected = two.held_out[identity, background[:, None]].any(axis=1)
    np.testing.assert_array_equal(two.ood, expected)


def test_images_of_64_pixels():
    assert make_object_scenes(4, image_size=64, random_state=0).images.shape[2:] == (
        64,
        64,
    )


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="size_range"):
        make_object_scenes(10, size_range=(0.5, 0.2))
    with pytest.raises(ValueError, match="n_objects"):
        make_object_scenes(10, n_objects=3)
    with pytest.raises(ValueError, match="image_size"):
        make_object_scenes(10, image_size=8)


def test_builds_without_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    background_images.cache_clear()
    scenes = make_object_scenes(10, image_size=24, random_state=0)
    assert scenes.images.shape == (10, 3, 24, 24)


def test_identities_are_readable_from_the_pixels(scenes):
    """The scenes hold what they claim: a linear probe on raw pixels reads the
    background and, less easily, the object in domain."""
    X = scenes.data[~scenes.ood]
    y = scenes.concepts[~scenes.ood].reset_index(drop=True)
    half = len(X) // 2
    columns = ["object_identity", "background_identity"]
    probe = SlotProbe(n_slots=1, random_state=0)
    probe.fit(X[:half], y[columns].iloc[:half].rename(columns=lambda c: "all_" + c))
    scores = probe.concept_scores(
        X[half:], y[columns].iloc[half:].rename(columns=lambda c: "all_" + c)
    )
    assert scores["all_background_identity"] > 0.95
    assert scores["all_object_identity"] > 0.4  # chance: 0.125


@pytest.mark.parametrize(
    "decoder",
    [
        TransformerDecoder(embed_dim=16, n_layers=1, interaction_penalty=0.05),
        MaskedDecoder("broadcast", shared=False),
        MaskedDecoder("conv", background="mlp"),
    ],
    ids=["transformer-with-penalty", "masked", "masked-with-background"],
)
def test_occluding_models_fit_search_and_replay_on_scenes(scenes, decoder):
    """The models for occluding objects run end to end on the scenes: fit, search
    from the encoder's guess, replay, and the probe on the inferred slots."""
    X = scenes.images[~scenes.ood][:96]
    y = scenes.concepts[~scenes.ood].iloc[:96]
    X_ood = scenes.images[scenes.ood][:16]
    y_ood = scenes.concepts[scenes.ood].iloc[:16]
    generator = GenerativeInverter(
        n_slots=2,
        slot_dim=4,
        decoder=decoder,
        kl_weight=0.05,
        search=GradientSearch(steps=3),
        max_epochs=2,
        batch_size=32,
        random_state=0,
    ).fit(X)
    replay = ReplayEncoder(
        generator, max_epochs=1, n_replay=64, search=GradientSearch(steps=2)
    ).fit(X)
    for model in (generator, replay):
        slots = model.transform(X_ood)
        assert slots.shape == (16, 8)
        assert np.isfinite(slots).all()
    probe = SlotProbe(random_state=0).fit(generator.transform(X), y)
    scores = probe.concept_scores(generator.transform(X_ood), y_ood)
    assert set(dict(scores)) == set(y)


def test_a_background_slot_is_drawn_behind_the_others():
    """With ``background``, slot 0 is drawn over the whole image, has no mask
    logit of its own, and shows wherever the other slots' masks are low."""
    module = MaskedDecoder("conv", background="mlp").build(3, 4, (3, 16, 16))
    z = torch.randn(5, 3, 4)
    content, masks = module.contents_and_masks(z)
    assert content.shape == (5, 3, 3, 16, 16) and masks.shape == (5, 3, 1, 16, 16)
    torch.testing.assert_close(masks.sum(dim=1), torch.ones(5, 1, 16, 16))
    torch.testing.assert_close(content[:, 0], module.background(z[:, 0]))
    torch.testing.assert_close(module(z), (content * masks).sum(dim=1))
    # Slot 0's mask logit is a fixed 0: its mask is 1 / (1 + sum exp(logits)).
    logits = module.slots(z[:, 1:])[:, :, -1:]
    expected = 1 / (1 + logits.exp().sum(dim=1))
    torch.testing.assert_close(masks[:, 0], expected)
    # Slot 0 changes only the background; the objects' contents ignore it.
    moved = z.clone()
    moved[:, 0] += 1.0
    moved_content, moved_masks = module.contents_and_masks(moved)
    torch.testing.assert_close(moved_content[:, 1:], content[:, 1:])
    torch.testing.assert_close(moved_masks, masks)
    assert not MaskedDecoder("conv", background="mlp").exchangeable_slots


def test_a_background_slot_needs_another_slot_and_a_known_renderer():
    with pytest.raises(ValueError, match="n_slots >= 2"):
        MaskedDecoder("conv", background="mlp").build(1, 4, (3, 16, 16))
    with pytest.raises(ValueError, match="background"):
        MaskedDecoder("conv", background="photo").candidates((3, 16, 16))
    X = make_object_scenes(40, image_size=16, random_state=0).images
    model = GenerativeInverter(
        n_slots=1, slot_dim=4, decoder=MaskedDecoder("conv", background="mlp"),
        max_epochs=1,
    )  # fmt: skip
    with pytest.raises(ValueError, match="n_slots >= 2"):
        model.fit(X)
