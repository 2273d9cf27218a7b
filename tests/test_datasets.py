"""Tests for :mod:`compgen_sk.datasets`: Bunch contents, seeding, compositional
ID/OOD splits for every support, renderer geometry, real digits, PUG loading and
argument checks."""

import colorsys
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from compgen_sk.datasets import (
    load_pug,
    make_additive,
    make_digit_compositions,
    make_sprites,
    render_sprites,
)
from compgen_sk.datasets._sprites import DEFAULT_RANGES
from compgen_sk.datasets._support import diagonal_distance, random_holdout

# Tiny sizes keep the whole module to a few seconds.
SPRITE_SIZE = 16
DIGIT_SIZE = 8  # load_digits' own resolution: the templates are used unresampled.
JITTER = 1
DIGIT_CELL = DIGIT_SIZE + 2 * JITTER
N_BINS = 4

SPRITE_NAMES = ["x", "y", "shape", "scale", "hue"]
SPRITE_CONTINUOUS = [0, 1, 3, 4]
SPRITE_SHAPE = 2


def sprites(n_samples=200, **kwargs):
    return make_sprites(n_samples, **{"image_size": SPRITE_SIZE, **kwargs})


def digits(n_samples=200, **kwargs):
    return make_digit_compositions(
        n_samples, **{"digit_size": DIGIT_SIZE, "jitter": JITTER, **kwargs}
    )


def additive(n_samples=200, **kwargs):
    return make_additive(n_samples, **{"n_features": 16, **kwargs})


GENERATORS = {"sprites": sprites, "digits": digits, "additive": additive}
# (latent shape per sample, latent names, concept columns) of each default call.
EXPECTED_LAYOUT = {
    "sprites": (
        (2, 5),
        SPRITE_NAMES,
        [f"slot{k}_{name}" for k in range(2) for name in SPRITE_NAMES],
    ),
    "digits": (
        (2, 4),
        ["digit", "dx", "dy", "hue"],
        ["slot0_digit", "slot1_digit"],
    ),
    "additive": (
        (3, 2),
        ["z0", "z1"],
        [f"slot{k}_z{j}" for k in range(3) for j in range(2)],
    ),
}


def sprite_unit(latents, scale_range=(0.09, 0.22)):
    """Unit-cube coordinates of the continuous sprite latents (shape left as is)."""
    ranges = dict(DEFAULT_RANGES, scale=scale_range)
    u = latents.astype(np.float64).copy()
    for j, name in enumerate(SPRITE_NAMES):
        if name != "shape":
            low, high = ranges[name]
            u[..., j] = (u[..., j] - low) / (high - low)
    return u


def additive_unit(latents):
    return (latents.astype(np.float64) + 1.0) / 2.0


def unit_bins(u, n_bins=N_BINS):
    return np.minimum(np.floor(u * n_bins), n_bins - 1).astype(np.int64)


def assert_ood_values_seen_in_id(id_values, ood_values):
    """Every single (slot, latent) value of an OOD sample occurs in some ID sample."""
    for column in range(id_values.shape[1]):
        unseen = set(ood_values[:, column]) - set(id_values[:, column])
        assert not unseen, f"column {column}: OOD values {unseen} never occur in ID"


def per_slot_bins(latents, unit, continuous):
    """(n, K * m) table of binned continuous latents and raw categorical ones."""
    u = unit(latents)
    table = latents.astype(np.int64).copy()
    table[..., continuous] = unit_bins(u[..., continuous])
    return table.reshape(len(table), -1)


# ----------------------------------------------------------------------------------
# Bunch contents
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GENERATORS)
def test_bunch_has_documented_shapes_dtypes_and_columns(name):
    bunch = GENERATORS[name](60, split="all", random_state=0)
    latent_shape, latent_names, columns = EXPECTED_LAYOUT[name]
    n = 60

    assert bunch.data.dtype == np.float32
    assert bunch.data.shape[0] == n
    if name != "additive":
        images = bunch.images
        assert images.dtype == np.float32
        assert images.ndim == 4 and images.shape[:2] == (n, 3)
        assert images.min() >= 0.0 and images.max() <= 1.0
        assert images.max() > 0.5  # objects are drawn, not an empty canvas
        np.testing.assert_array_equal(bunch.data, images.reshape(n, -1))
    else:
        assert bunch.data.shape == (n, 16)
        assert "images" not in bunch

    assert bunch.latents.shape == (n, *latent_shape)
    assert bunch.latents.dtype == np.float32
    assert list(bunch.latent_names) == latent_names
    assert len(bunch.latent_names) == bunch.latents.shape[2]

    assert isinstance(bunch.concepts, pd.DataFrame)
    assert list(bunch.concepts.columns) == columns
    assert len(bunch.concepts) == n
    assert bunch.ood.dtype == np.bool_ and bunch.ood.shape == (n,)
    assert bunch.combination.dtype == np.int64 and bunch.combination.shape == (n,)
    assert isinstance(bunch.exchangeable_slots, bool)
    # No object of these data occludes a background.
    assert bunch.background_slot is False
    assert isinstance(bunch.DESCR, str) and bunch.DESCR


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("sprites", {}, True),
        ("sprites", {"n_slots": 3}, True),
        # One object has nothing to be exchanged with.
        ("sprites", {"n_slots": 1}, False),
        # Digits sit in their own cells, additive slots have their own functions.
        ("digits", {}, False),
        ("additive", {}, False),
    ],
)
def test_bunch_says_whether_its_slots_are_exchangeable(name, kwargs, expected):
    bunch = GENERATORS[name](20, random_state=0, **kwargs)
    assert bunch.exchangeable_slots is expected
    # Said by the Bunch, not marked on the concept table.
    assert bunch.concepts.attrs == {}


def test_sprite_image_sizes_follow_image_size():
    for size in (12, 20):
        bunch = make_sprites(4, image_size=size, random_state=0)
        assert bunch.images.shape == (4, 3, size, size)


def test_digit_canvas_is_one_cell_per_slot():
    bunch = make_digit_compositions(
        5, n_slots=3, digit_size=10, jitter=2, random_state=0
    )
    assert bunch.images.shape == (5, 3, 14, 3 * 14)
    assert bunch.latents.shape == (5, 3, 4)


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize(
    ("split", "expected_ood"), [("id", 0), ("ood", 60), ("all", 30)]
)
def test_split_selects_id_ood_or_half_of_each(name, split, expected_ood):
    support = {} if name == "digits" else {"support": "random"}
    bunch = GENERATORS[name](60, split=split, random_state=0, **support)
    assert int(bunch.ood.sum()) == expected_ood


def test_split_all_shuffles_id_and_ood_together():
    bunch = sprites(60, split="all", random_state=0)
    # Not 30 ID rows followed by 30 OOD rows.
    assert bunch.ood[:30].any() and not bunch.ood[:30].all()


@pytest.mark.parametrize("name", GENERATORS)
def test_return_X_y_gives_the_bunch_inputs_and_latents(name):
    bunch = GENERATORS[name](20, random_state=3)
    X, latents = GENERATORS[name](20, random_state=3, return_X_y=True)
    expected = bunch.data if name == "additive" else bunch.images
    np.testing.assert_array_equal(X, expected)
    np.testing.assert_array_equal(latents, bunch.latents)


def test_sprite_concepts_hold_the_latents():
    bunch = sprites(50, random_state=0, shapes=("circle", "triangle", "square"))
    for k in range(2):
        shape = bunch.concepts[f"slot{k}_shape"]
        assert isinstance(shape.dtype, pd.CategoricalDtype)
        assert list(shape.cat.categories) == ["circle", "triangle", "square"]
        np.testing.assert_array_equal(shape.cat.codes, bunch.latents[:, k, 2])
        for j in SPRITE_CONTINUOUS:
            column = bunch.concepts[f"slot{k}_{SPRITE_NAMES[j]}"]
            # Diagonal support: continuous concepts stay numbers.
            assert column.dtype == np.float64
            np.testing.assert_allclose(column, bunch.latents[:, k, j], rtol=1e-6)
    assert set(bunch.shapes) == {"circle", "triangle", "square"}


def test_sprite_latents_lie_in_their_ranges():
    bunch = sprites(300, split="all", support="random", random_state=0)
    for j, name in enumerate(SPRITE_NAMES):
        values = bunch.latents[:, :, j]
        if name == "shape":
            assert set(np.unique(values)) <= {0.0, 1.0}
        else:
            low, high = DEFAULT_RANGES[name]
            assert values.min() >= low and values.max() <= high


def test_random_support_bins_continuous_concepts_into_categoricals():
    bunch = sprites(100, support="random", split="all", random_state=0)
    u = sprite_unit(bunch.latents)
    for k in range(2):
        for j in SPRITE_CONTINUOUS:
            column = bunch.concepts[f"slot{k}_{SPRITE_NAMES[j]}"]
            assert isinstance(column.dtype, pd.CategoricalDtype)
            assert len(column.cat.categories) == N_BINS
            np.testing.assert_array_equal(column.cat.codes, unit_bins(u[:, k, j]))


@pytest.mark.parametrize("name", GENERATORS)
def test_combination_is_a_function_of_the_binned_concepts(name):
    support = {} if name == "digits" else {"support": "random"}
    bunch = GENERATORS[name](200, split="all", random_state=0, **support)
    rows = pd.MultiIndex.from_frame(bunch.concepts.astype(str)).factorize()[0]
    pairs = pd.DataFrame({"row": rows, "combination": bunch.combination})
    # One id per concept row and one concept row per id: a bijection.
    assert (pairs.groupby("row")["combination"].nunique() == 1).all()
    assert (pairs.groupby("combination")["row"].nunique() == 1).all()


def test_digit_concepts_are_categorical_classes():
    bunch = digits(50, split="all", random_state=0)
    for k in range(2):
        column = bunch.concepts[f"slot{k}_digit"]
        assert isinstance(column.dtype, pd.CategoricalDtype)
        assert list(column.cat.categories) == [str(c) for c in range(10)]
        np.testing.assert_array_equal(column.cat.codes, bunch.latents[:, k, 0])
    np.testing.assert_array_equal(
        bunch.combination, bunch.latents[:, 0, 0] * 10 + bunch.latents[:, 1, 0]
    )


def test_additive_data_is_its_generator_applied_to_its_latents():
    bunch = additive(50, split="all", random_state=0)
    assert bunch.latents.min() >= -1.0 and bunch.latents.max() <= 1.0
    np.testing.assert_allclose(
        bunch.data,
        bunch.generator(bunch.latents.astype(np.float64)),
        rtol=1e-5,
        atol=1e-5,
    )


def test_additive_without_interaction_is_a_sum_of_slot_functions():
    bunch = make_additive(20, n_slots=2, n_features=8, random_state=0)
    z = bunch.latents.astype(np.float64)
    # Swap slot 1 between two halves: f_0(a) + f_1(b) + f_0(c) + f_1(d) is unchanged.
    swapped = z.copy()
    swapped[:10, 1], swapped[10:, 1] = z[10:, 1], z[:10, 1]
    total = bunch.generator(z).sum(axis=0)
    np.testing.assert_allclose(bunch.generator(swapped).sum(axis=0), total, atol=1e-9)

    coupled = make_additive(
        20, n_slots=2, n_features=8, interaction=1.0, random_state=0
    )
    total = coupled.generator(z).sum(axis=0)
    assert not np.allclose(coupled.generator(swapped).sum(axis=0), total, atol=1e-6)


def test_additive_noise_perturbs_the_generator_output():
    bunch = additive(200, noise=0.5, random_state=0)
    residual = bunch.data - bunch.generator(bunch.latents.astype(np.float64))
    assert residual.std() == pytest.approx(0.5, rel=0.1)


# ----------------------------------------------------------------------------------
# Seeding
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GENERATORS)
def test_same_random_state_gives_identical_data(name):
    first = GENERATORS[name](40, split="all", random_state=7)
    second = GENERATORS[name](40, split="all", random_state=7)
    np.testing.assert_array_equal(first.data, second.data)
    np.testing.assert_array_equal(first.latents, second.latents)
    np.testing.assert_array_equal(first.ood, second.ood)
    np.testing.assert_array_equal(first.combination, second.combination)
    pd.testing.assert_frame_equal(first.concepts, second.concepts)


@pytest.mark.parametrize("name", GENERATORS)
def test_different_random_state_gives_different_data(name):
    first = GENERATORS[name](40, split="all", random_state=7)
    second = GENERATORS[name](40, split="all", random_state=8)
    assert not np.array_equal(first.data, second.data)
    assert not np.array_equal(first.latents, second.latents)


def test_random_state_instance_is_accepted_and_advanced():
    rng = np.random.RandomState(0)
    first, second = sprites(10, random_state=rng), sprites(10, random_state=rng)
    assert not np.array_equal(first.latents, second.latents)
    np.testing.assert_array_equal(
        sprites(10, random_state=np.random.RandomState(0)).latents, first.latents
    )


@pytest.mark.parametrize("name", GENERATORS)
def test_separate_id_and_ood_calls_share_one_random_design(name):
    support = {} if name == "digits" else {"support": "random"}
    id_part = GENERATORS[name](300, split="id", random_state=0, **support)
    ood_part = GENERATORS[name](300, split="ood", random_state=1, **support)
    assert not set(id_part.combination) & set(ood_part.combination)
    # A different design holds out other combinations.
    other = GENERATORS[name](300, split="ood", random_state=1, design_seed=5, **support)
    assert set(other.combination) & set(id_part.combination)


def test_additive_id_and_ood_calls_share_one_generator():
    id_part = additive(30, split="id", random_state=0)
    ood_part = additive(30, split="ood", random_state=1)
    z = id_part.latents.astype(np.float64)
    np.testing.assert_allclose(ood_part.generator(z), id_part.data, atol=1e-5)
    other = additive(30, split="ood", random_state=1, design_seed=3)
    assert not np.allclose(other.generator(z), id_part.data, atol=1e-3)


# ----------------------------------------------------------------------------------
# The split is compositional, for every support
# ----------------------------------------------------------------------------------


def test_random_holdout_keeps_every_single_slot_value_in_id():
    designs = [((5, 3), 0.5, 0), ((4, 4, 4), 0.7, 1), ((6, 2), 0.9, 2)]
    for counts, fraction, seed in designs:
        grids = np.meshgrid(*[np.arange(c) for c in counts], indexing="ij")
        combos = np.stack([g.reshape(-1) for g in grids], axis=1)
        held = random_holdout(combos, counts, fraction, seed)
        assert held.any() and not held.all()
        for k, count in enumerate(counts):
            assert set(combos[~held, k]) == set(range(count))
        # A fixed function of the combination: order and repetition do not matter.
        order = np.random.default_rng(seed).permutation(len(combos))
        np.testing.assert_array_equal(
            random_holdout(combos[order], counts, fraction, seed), held[order]
        )


def test_random_holdout_fraction_is_roughly_respected():
    counts = (20, 20)
    grids = np.meshgrid(np.arange(20), np.arange(20), indexing="ij")
    combos = np.stack([g.reshape(-1) for g in grids], axis=1)
    for fraction in (0.25, 0.5, 0.75):
        held = random_holdout(combos, counts, fraction, 0)
        # 20 of the 400 combinations sit on the protected diagonal.
        assert held.mean() == pytest.approx(fraction * 380 / 400, abs=0.07)


@pytest.mark.parametrize("ood_overlap", [False, True])
def test_sprites_diagonal_split_is_compositional(ood_overlap):
    # The support depends on observable values only: the categorical shape counts
    # at its category's centre, (index + 0.5) / n_shapes.
    delta = 0.125
    id_part = sprites(400, split="id", random_state=0)
    ood_part = sprites(400, split="ood", random_state=1, ood_overlap=ood_overlap)

    def observable(latents):
        unit = sprite_unit(latents)[..., SPRITE_CONTINUOUS]
        shape = (latents[..., 2:3] + 0.5) / len(id_part.shapes)
        return np.concatenate([unit, shape], axis=-1)

    u_id, u_ood = observable(id_part.latents), observable(ood_part.latents)
    assert diagonal_distance(u_id).max() <= delta + 1e-5
    outside = (diagonal_distance(u_ood) > delta).any(axis=1)
    assert outside.all(), (
        f"{int((~outside).sum())} OOD sprites have every latent within delta of "
        "the diagonal"
    )
    assert_ood_values_seen_in_id(
        per_slot_bins(id_part.latents, sprite_unit, SPRITE_CONTINUOUS),
        per_slot_bins(ood_part.latents, sprite_unit, SPRITE_CONTINUOUS),
    )


@pytest.mark.parametrize("delta", [0.05, 0.125, 0.3])
def test_additive_diagonal_split_is_compositional(delta):
    id_part = additive(300, split="id", delta=delta, random_state=0)
    ood_part = additive(300, split="ood", delta=delta, random_state=1)
    u_id, u_ood = additive_unit(id_part.latents), additive_unit(ood_part.latents)
    assert diagonal_distance(u_id).max() <= delta + 1e-5
    assert (diagonal_distance(u_ood) > delta).any(axis=1).all()
    assert_ood_values_seen_in_id(
        per_slot_bins(id_part.latents, additive_unit, [0, 1]),
        per_slot_bins(ood_part.latents, additive_unit, [0, 1]),
    )


def test_diagonal_id_latents_fill_the_delta_band():
    # Not only the exact diagonal: the band of width delta is used.
    id_part = additive(300, split="id", delta=0.3, random_state=0)
    distance = diagonal_distance(additive_unit(id_part.latents))
    assert distance.max() > 0.2


@pytest.mark.parametrize(
    ("name", "unit", "continuous"),
    [("sprites", sprite_unit, SPRITE_CONTINUOUS), ("additive", additive_unit, [0, 1])],
)
def test_l_shape_split_holds_out_the_corner(name, unit, continuous):
    id_part = GENERATORS[name](300, support="l_shape", split="id", random_state=0)
    ood_part = GENERATORS[name](300, support="l_shape", split="ood", random_state=1)
    x_id = unit(id_part.latents)[:, :, 0]
    x_ood = unit(ood_part.latents)[:, :, 0]
    assert (x_ood > 0.5).all()
    assert not (x_id > 0.5).all(axis=1).any()
    # ID still reaches into the upper half of x, one slot at a time.
    assert (x_id > 0.5).any(axis=0).all()
    # With an even number of bins the corner is a union of bins.
    assert not set(id_part.combination) & set(ood_part.combination)
    assert_ood_values_seen_in_id(
        per_slot_bins(id_part.latents, unit, continuous),
        per_slot_bins(ood_part.latents, unit, continuous),
    )


@pytest.mark.parametrize("name", GENERATORS)
def test_random_split_holds_out_whole_combinations(name):
    support = {} if name == "digits" else {"support": "random"}
    for id_part, ood_part in [
        (
            GENERATORS[name](300, split="id", random_state=0, **support),
            GENERATORS[name](300, split="ood", random_state=1, **support),
        ),
        _split_parts(GENERATORS[name](400, split="all", random_state=2, **support)),
    ]:
        assert not set(id_part.combination) & set(ood_part.combination)
        seen = set(map(tuple, id_part.concepts.astype(str).to_numpy()))
        assert not seen & set(map(tuple, ood_part.concepts.astype(str).to_numpy()))
        assert_ood_values_seen_in_id(
            id_part.concepts.astype(str).to_numpy(),
            ood_part.concepts.astype(str).to_numpy(),
        )


def _split_parts(bunch):
    def part(mask):
        return type(bunch)(
            combination=bunch.combination[mask],
            concepts=bunch.concepts[mask].reset_index(drop=True),
        )

    return part(~bunch.ood), part(bunch.ood)


@pytest.mark.parametrize("name", ["sprites", "additive"])
def test_full_support_holds_nothing_out(name):
    bunch = GENERATORS[name](100, support="full", random_state=0)
    assert not bunch.ood.any()
    # The whole cube: no constraint ties the slots together.
    unit = sprite_unit if name == "sprites" else additive_unit
    assert diagonal_distance(unit(bunch.latents)[..., [0, 1]]).max() > 0.3


# ----------------------------------------------------------------------------------
# Renderer
# ----------------------------------------------------------------------------------

RENDER_SHAPES = ("circle", "square", "triangle")


def lone_object(x, y, shape, scale, hue, size=32, shapes=RENDER_SHAPES):
    latents = np.array([[[x, y, shapes.index(shape), scale, hue]]], dtype=np.float32)
    return render_sprites(latents, size, shapes)[0]


def coverage(image):
    """Fraction of each pixel covered: colours at full value have a channel at 1."""
    return image.max(axis=0)


@pytest.mark.parametrize("shape", RENDER_SHAPES)
@pytest.mark.parametrize(
    ("x", "y", "scale"), [(0.5, 0.5, 0.3), (0.3, 0.7, 0.25), (0.62, 0.27, 0.18)]
)
def test_lone_object_centre_of_mass_is_at_its_latents(shape, x, y, scale):
    size = 32
    weight = coverage(lone_object(x, y, shape, scale, 0.4, size))
    centres = np.arange(size) + 0.5
    centre_x = (weight * centres[None, :]).sum() / weight.sum()
    centre_y = (weight * centres[:, None]).sum() / weight.sum()
    # Well within one pixel: a half-pixel convention error would show here.
    assert centre_x == pytest.approx(x * size, abs=0.25)
    assert centre_y == pytest.approx(y * size, abs=0.25)


@pytest.mark.parametrize("shape", RENDER_SHAPES)
@pytest.mark.parametrize("scale", [0.15, 0.3, 0.45])
def test_lone_object_area_is_scale_squared(shape, scale):
    size = 32
    area = coverage(lone_object(0.5, 0.45, shape, scale, 0.1, size)).sum()
    assert area == pytest.approx((scale * size) ** 2, rel=0.05)


@pytest.mark.parametrize("hue", [0.0, 0.1, 0.33, 0.5, 0.66, 0.9])
def test_lone_object_colour_is_hsv_hue_at_full_saturation_and_value(hue):
    image = lone_object(0.5, 0.5, "square", 0.4, hue)
    expected = np.array(colorsys.hsv_to_rgb(hue, 1.0, 1.0), dtype=np.float32)
    np.testing.assert_allclose(image[:, 16, 16], expected, atol=1e-5)
    # Anti-aliased edges scale the same colour down, on a black background.
    weight = coverage(image)
    np.testing.assert_allclose(image, weight[None] * expected[:, None, None], atol=1e-5)
    assert ((weight > 0.05) & (weight < 0.95)).any()
    assert weight[0, 0] == 0.0 and weight[-1, -1] == 0.0


def test_y_is_measured_from_the_top_of_the_image():
    weight = coverage(lone_object(0.5, 0.2, "circle", 0.2, 0.5))
    assert weight[:16].sum() > 0.99 * weight.sum()


def test_triangle_points_up():
    weight = coverage(lone_object(0.5, 0.5, "triangle", 0.5, 0.5))
    # Centroid at the centre: 4/9 of a triangle's area lies on the apex side.
    top, bottom = weight[:16].sum(), weight[16:].sum()
    assert top / (top + bottom) == pytest.approx(4 / 9, abs=0.02)


def test_later_objects_are_drawn_over_earlier_ones():
    red, blue = 0.0, 2 / 3
    big_square = [0.5, 0.5, RENDER_SHAPES.index("square"), 0.5, red]
    small_circle = [0.5, 0.5, RENDER_SHAPES.index("circle"), 0.2, blue]
    latents = np.array([[big_square, small_circle], [small_circle, big_square]])
    images = render_sprites(latents.astype(np.float32), 32, RENDER_SHAPES)
    # Circle last: its colour at the shared centre, the square's around it.
    np.testing.assert_allclose(images[0, :, 16, 16], [0, 0, 1], atol=1e-5)
    np.testing.assert_allclose(images[0, :, 16, 10], [1, 0, 0], atol=1e-5)
    # Square last: it hides the circle entirely.
    np.testing.assert_allclose(images[1, :, 16, 16], [1, 0, 0], atol=1e-5)
    assert images[1, 2].max() == 0.0


def test_batch_rendering_equals_one_image_at_a_time():
    bunch = make_sprites(
        1030, image_size=8, n_slots=3, scale_range=(0.15, 0.3), random_state=0
    )
    # Crosses the renderer's internal chunk boundary.
    for i in (0, 1, 1023, 1024, 1029):
        single = render_sprites(bunch.latents[i : i + 1], 8, tuple(bunch.shapes))
        np.testing.assert_allclose(bunch.images[i], single[0], atol=1e-6)


def test_render_sprites_accepts_float64_latents():
    # Hand-made latents are float64 by default in numpy.
    latents = np.array([[[0.3, 0.4, 0, 0.3, 0.2], [0.6, 0.6, 1, 0.2, 0.7]]])
    expected = render_sprites(latents.astype(np.float32), 16, RENDER_SHAPES)
    np.testing.assert_allclose(
        render_sprites(latents, 16, RENDER_SHAPES), expected, atol=1e-6
    )


def test_make_sprites_images_are_render_sprites_of_its_latents():
    bunch = sprites(20, split="all", random_state=0, shapes=("circle", "hexagon"))
    np.testing.assert_array_equal(
        bunch.images, render_sprites(bunch.latents, SPRITE_SIZE, ("circle", "hexagon"))
    )


def _circumradius(shape):
    """Radius of the circle around a regular shape of area 1."""
    sides = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}.get(shape)
    if sides is None:
        return 1 / math.sqrt(math.pi)
    return math.sqrt(2 / (sides * math.sin(2 * math.pi / sides)))


def _min_gap(bunch, shapes):
    """Smallest distance between bounding circles of two objects, per image."""
    radius = (
        np.array([_circumradius(s) for s in shapes])[
            bunch.latents[:, :, SPRITE_SHAPE].astype(int)
        ]
        * bunch.latents[:, :, 3]
    )
    gaps = []
    n_slots = bunch.latents.shape[1]
    for i in range(n_slots):
        for j in range(i + 1, n_slots):
            distance = np.linalg.norm(
                bunch.latents[:, i, :2] - bunch.latents[:, j, :2], axis=1
            )
            gaps.append(distance - radius[:, i] - radius[:, j])
    return np.min(gaps, axis=0)


@pytest.mark.parametrize("support", ["diagonal", "random", "l_shape"])
def test_ood_objects_do_not_overlap_by_default(support):
    shapes = ("triangle", "square", "circle")
    bunch = sprites(
        200, n_slots=3, split="ood", support=support, shapes=shapes, random_state=0
    )
    assert (_min_gap(bunch, shapes) > 0).all()


def test_ood_overlap_lets_ood_objects_overlap():
    shapes = ("triangle", "square")
    bunch = sprites(
        200, n_slots=3, split="ood", support="random", ood_overlap=True, random_state=0
    )
    assert (_min_gap(bunch, shapes) < 0).any()


# ----------------------------------------------------------------------------------
# Real handwritten digits
# ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_digits():
    return load_digits()


def _expected_canvas(bunch, i, reference):
    """Canvas (H, W) built by hand from the returned instances and jitter."""
    n_slots = bunch.latents.shape[1]
    canvas = np.zeros((DIGIT_CELL, n_slots * DIGIT_CELL), dtype=np.float32)
    for k in range(n_slots):
        dx, dy = bunch.latents[i, k, 1:3].astype(int)
        top, left = JITTER + dy, k * DIGIT_CELL + JITTER + dx
        template = reference.images[bunch.instance[i, k]] / 16.0
        canvas[top : top + DIGIT_SIZE, left : left + DIGIT_SIZE] = template
    return canvas


def test_each_digit_is_its_load_digits_instance_in_its_own_cell(reference_digits):
    bunch = digits(40, n_slots=3, split="all", colored=False, random_state=0)
    np.testing.assert_array_equal(
        reference_digits.target[bunch.instance], bunch.latents[:, :, 0]
    )
    assert np.abs(bunch.latents[:, :, 1:3]).max() <= JITTER
    for i in range(len(bunch.images)):
        expected = _expected_canvas(bunch, i, reference_digits)
        for channel in range(3):
            np.testing.assert_allclose(bunch.images[i, channel], expected, atol=1e-6)


def test_colored_digits_take_their_slot_hue(reference_digits):
    bunch = digits(20, random_state=1)
    for i in range(len(bunch.images)):
        expected = _expected_canvas(bunch, i, reference_digits)
        for k in range(2):
            colour = colorsys.hsv_to_rgb(float(bunch.latents[i, k, 3]), 1.0, 1.0)
            cell = slice(k * DIGIT_CELL, (k + 1) * DIGIT_CELL)
            np.testing.assert_allclose(
                bunch.images[i, :, :, cell],
                np.array(colour)[:, None, None] * expected[None, :, cell],
                atol=1e-5,
            )


def test_every_class_appears_in_every_slot_in_id():
    bunch = digits(400, split="id", random_state=0)
    for k in range(2):
        assert set(bunch.latents[:, k, 0].astype(int)) == set(range(10))


def test_ood_class_pairs_are_absent_from_id():
    id_part = digits(400, split="id", random_state=0)
    ood_part = digits(200, split="ood", random_state=1)
    id_pairs = set(map(tuple, id_part.latents[:, :, 0].astype(int)))
    ood_pairs = set(map(tuple, ood_part.latents[:, :, 0].astype(int)))
    assert not id_pairs & ood_pairs
    # Pairs of equal classes are never held out.
    assert all(a != b for a, b in ood_pairs)


def test_n_classes_limits_the_digit_classes():
    bunch = digits(100, n_classes=3, split="all", random_state=0)
    assert set(np.unique(bunch.latents[:, :, 0])) <= {0.0, 1.0, 2.0}
    assert list(bunch.concepts["slot0_digit"].cat.categories) == ["0", "1", "2"]


def test_digit_full_support_covers_held_out_pairs():
    bunch = digits(400, n_classes=3, support="full", random_state=0)
    assert not bunch.ood.any()
    assert len(set(bunch.combination)) == 9


# ----------------------------------------------------------------------------------
# PUG: Animals, on a tiny fixture in its layout
# ----------------------------------------------------------------------------------

PUG_ANIMALS = ["Bear", "Cat", "Dog", "Elephant"]
PUG_WORLDS = ["Desert", "Forest", "Snow"]
PUG_TEXTURES = ["Default", "Sky"]


def _pug_colour(animal, world, texture):
    """The uniform RGB colour of a fixture image encodes its factors."""
    return (
        40 * (PUG_ANIMALS.index(animal) + 1),
        60 * (PUG_WORLDS.index(world) + 1),
        100 if texture == "Default" else 200,
    )


def _write_pug(root, columns=None, labels_file="labels_pug_animal.csv"):
    columns = columns or {}
    rows = []
    (root / "images").mkdir(exist_ok=True)
    for animal in PUG_ANIMALS:
        for world in PUG_WORLDS:
            for yaw, texture in enumerate(PUG_TEXTURES):
                name = f"images/{animal}_{world}_{texture}.png"
                colour = _pug_colour(animal, world, texture)
                Image.new("RGB", (24, 20), colour).save(root / name)
                rows.append(
                    {
                        "filename": name,
                        "world_name": world,
                        "character_name": animal,
                        "character_scale": 1.0,
                        "character_texture": texture,
                        "camera_yaw": 90 * yaw,
                    }
                )
    frame = pd.DataFrame(rows).rename(columns=columns)
    frame.to_csv(root / labels_file, index=False)
    return root


@pytest.fixture
def pug_root(tmp_path):
    return _write_pug(tmp_path)


def _pug_pairs(bunch):
    return set(
        zip(bunch.frame["character_name"], bunch.frame["world_name"], strict=True)
    )


def test_load_pug_reads_every_image_resized_with_its_labels(pug_root):
    bunch = load_pug(pug_root, image_size=8)
    n = len(PUG_ANIMALS) * len(PUG_WORLDS) * len(PUG_TEXTURES)
    assert bunch.images.shape == (n, 3, 8, 8)
    assert bunch.images.dtype == np.float32
    np.testing.assert_array_equal(bunch.data, bunch.images.reshape(n, -1))
    assert bunch.animal_names == PUG_ANIMALS
    assert bunch.background_names == PUG_WORLDS
    assert bunch.latents.shape == (n, 2, 1)
    assert list(bunch.latent_names) == ["class"]
    for i, row in bunch.frame.iterrows():
        colour = np.array(
            _pug_colour(row.character_name, row.world_name, row.character_texture)
        )
        np.testing.assert_allclose(
            bunch.images[i],
            np.broadcast_to(colour[:, None, None] / 255, (3, 8, 8)),
            atol=1e-6,
        )
        assert bunch.latents[i, 0, 0] == PUG_ANIMALS.index(row.character_name)
        assert bunch.latents[i, 1, 0] == PUG_WORLDS.index(row.world_name)
    assert list(bunch.concepts.columns) == ["animal_class", "background_class"]
    for column in bunch.concepts:
        assert isinstance(bunch.concepts[column].dtype, pd.CategoricalDtype)
    np.testing.assert_array_equal(
        bunch.concepts["animal_class"].astype(str), bunch.frame["character_name"]
    )
    np.testing.assert_array_equal(
        bunch.combination,
        bunch.latents[:, 0, 0] * len(PUG_WORLDS) + bunch.latents[:, 1, 0],
    )
    assert bunch.combination.dtype == np.int64
    assert bunch.ood.dtype == np.bool_
    # An animal and a background are slots with roles, not exchangeable.
    assert bunch.exchangeable_slots is False
    assert bunch.background_slot is True  # the animal is in front of it
    assert bunch.concepts.attrs == {}


def test_load_pug_cache_decodes_once_into_uint8_pixels(pug_root, tmp_path):
    plain = load_pug(pug_root, image_size=8, random_state=0)
    cache = tmp_path / "cache"
    first = load_pug(pug_root, image_size=8, random_state=0, cache=cache)
    files = sorted(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npy"
    assert isinstance(first.images, np.memmap) and first.images.dtype == np.uint8
    np.testing.assert_array_equal(
        first.images, np.round(plain.images * 255).astype(np.uint8)
    )
    stamp = files[0].stat().st_mtime_ns
    again = load_pug(pug_root, image_size=8, random_state=0, cache=cache)
    assert files[0].stat().st_mtime_ns == stamp  # reused, not decoded again
    np.testing.assert_array_equal(again.images, first.images)
    pd.testing.assert_frame_equal(again.concepts, plain.concepts)
    load_pug(pug_root, image_size=4, random_state=0, cache=cache)
    assert len(list(cache.iterdir())) == 2  # one file per size and selection


def test_load_pug_holds_out_pairs_but_no_animal_or_background(pug_root):
    bunch = load_pug(pug_root, image_size=4)
    assert bunch.ood.any() and not bunch.ood.all()
    id_part = load_pug(pug_root, image_size=4, split="id")
    ood_part = load_pug(pug_root, image_size=4, split="ood")
    assert not id_part.ood.any() and ood_part.ood.all()
    assert len(id_part.images) + len(ood_part.images) == len(bunch.images)
    assert not _pug_pairs(id_part) & _pug_pairs(ood_part)
    assert set(id_part.frame["character_name"]) == set(PUG_ANIMALS)
    assert set(id_part.frame["world_name"]) == set(PUG_WORLDS)
    # Both textures of a pair share its split: held out is the pair, not the image.
    assert len(_pug_pairs(ood_part)) * len(PUG_TEXTURES) == len(ood_part.images)


def test_load_pug_selects_animals_and_backgrounds(pug_root):
    first_two = load_pug(pug_root, image_size=4, animals=2)
    assert first_two.animal_names == ["Bear", "Cat"]
    assert set(first_two.frame["character_name"]) == {"Bear", "Cat"}
    assert len(first_two.images) == 2 * len(PUG_WORLDS) * len(PUG_TEXTURES)

    named = load_pug(pug_root, image_size=4, backgrounds=["Snow", "Desert"])
    assert named.background_names == ["Snow", "Desert"]
    assert set(named.frame["world_name"]) == {"Snow", "Desert"}
    assert list(named.concepts["background_class"].cat.categories) == [
        "Snow",
        "Desert",
    ]
    np.testing.assert_array_equal(
        named.latents[:, 1, 0], (named.frame["world_name"] == "Desert").astype(int)
    )


def test_load_pug_query_filters_the_label_file_first(pug_root):
    bunch = load_pug(pug_root, image_size=4, query="character_texture == 'Default'")
    assert len(bunch.images) == len(PUG_ANIMALS) * len(PUG_WORLDS)
    assert set(bunch.frame["character_texture"]) == {"Default"}
    np.testing.assert_allclose(bunch.images[:, 2], 100 / 255, atol=1e-6)


def test_load_pug_n_samples_draws_a_reproducible_subset(pug_root):
    everything = load_pug(pug_root, image_size=4)
    subset = load_pug(pug_root, image_size=4, n_samples=5, random_state=0)
    again = load_pug(pug_root, image_size=4, n_samples=5, random_state=0)
    assert len(subset.images) == 5
    pd.testing.assert_frame_equal(subset.frame, again.frame)
    assert set(subset.frame["filename"]) <= set(everything.frame["filename"])
    other = load_pug(pug_root, image_size=4, n_samples=5, random_state=1)
    assert set(other.frame["filename"]) != set(subset.frame["filename"])
    # More than there are: everything.
    assert len(load_pug(pug_root, image_size=4, n_samples=1000).images) == 24


def test_load_pug_column_names_are_configurable(tmp_path):
    columns = {"filename": "file", "character_name": "animal", "world_name": "scene"}
    _write_pug(tmp_path, columns=columns, labels_file="other.csv")
    bunch = load_pug(
        tmp_path,
        labels_file="other.csv",
        image_column="file",
        animal_column="animal",
        background_column="scene",
        image_size=4,
    )
    assert len(bunch.images) == 24
    assert bunch.animal_names == PUG_ANIMALS
    assert bunch.background_names == PUG_WORLDS


def test_load_pug_return_X_y(pug_root):
    images, latents = load_pug(pug_root, image_size=4, return_X_y=True)
    assert images.shape == (24, 3, 4, 4) and latents.shape == (24, 2, 1)


def test_load_pug_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="path="):
        load_pug(tmp_path / "nowhere")


def test_load_pug_missing_label_file_raises(pug_root):
    (pug_root / "labels_pug_animal.csv").rename(pug_root / "renamed.csv")
    expected = r"labels_pug_animal\.csv.*renamed\.csv"
    with pytest.raises(FileNotFoundError, match=expected):
        load_pug(pug_root)


def test_load_pug_missing_image_raises(pug_root):
    (pug_root / "images" / "Cat_Snow_Sky.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing.*Cat_Snow_Sky\.png"):
        load_pug(pug_root, image_size=4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"animal_column": "species"}, "animal_column"),
        ({"image_column": "path"}, "image_column"),
        ({"animals": ["Unicorn"]}, "animals"),
        ({"animals": 9}, "animals"),
        ({"backgrounds": ["Snow"]}, "backgrounds"),
        ({"split": "test"}, "split"),
        ({"holdout_fraction": 1.0}, "holdout_fraction"),
        ({"image_size": 2}, "image_size"),
        ({"n_samples": 0}, "n_samples"),
    ],
)
def test_load_pug_bad_arguments_raise_value_error(pug_root, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_pug(pug_root, **kwargs)


# ----------------------------------------------------------------------------------
# Bad arguments name themselves
# ----------------------------------------------------------------------------------

BAD_ARGUMENTS = [
    ("sprites", {"n_slots": 0}, "n_slots"),
    ("sprites", {"n_samples": 0}, "n_samples"),
    ("sprites", {"n_samples": -3}, "n_samples"),
    ("sprites", {"support": "hexagonal"}, "support"),
    ("sprites", {"split": "test"}, "split"),
    ("sprites", {"delta": 0.0}, "delta"),
    ("sprites", {"delta": 1.5}, "delta"),
    ("sprites", {"image_size": 4}, "image_size"),
    ("sprites", {"shapes": ("triangle", "star")}, "shapes"),
    ("sprites", {"shapes": ()}, "shapes"),
    ("sprites", {"scale_range": (0.3, 0.2)}, "scale_range"),
    ("sprites", {"holdout_fraction": 0.0}, "holdout_fraction"),
    ("sprites", {"holdout_fraction": 1.0}, "holdout_fraction"),
    ("sprites", {"n_bins": 1}, "n_bins"),
    ("sprites", {"support": "full", "split": "ood"}, "support='full'"),
    ("sprites", {"support": "full", "split": "all"}, "support='full'"),
    ("sprites", {"n_slots": 1, "split": "ood"}, "n_slots"),
    ("additive", {"n_slots": 0}, "n_slots"),
    ("additive", {"n_samples": 0}, "n_samples"),
    ("additive", {"support": "corner"}, "support"),
    ("additive", {"delta": -0.1}, "delta"),
    ("additive", {"slot_dim": 0}, "slot_dim"),
    ("additive", {"noise": -1.0}, "noise"),
    ("additive", {"interaction": -1.0}, "interaction"),
    ("additive", {"support": "full", "split": "ood"}, "support='full'"),
    ("digits", {"n_slots": 0}, "n_slots"),
    ("digits", {"n_samples": 0}, "n_samples"),
    ("digits", {"support": "diagonal"}, "support"),
    ("digits", {"split": "train"}, "split"),
    ("digits", {"n_classes": 11}, "n_classes"),
    ("digits", {"n_classes": 1}, "n_classes"),
    ("digits", {"digit_size": 4}, "digit_size"),
    ("digits", {"holdout_fraction": 1.2}, "holdout_fraction"),
    ("digits", {"support": "full", "split": "ood"}, "support='full'"),
]


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    BAD_ARGUMENTS,
    ids=[f"{name}-{'-'.join(kwargs)}" for name, kwargs, _ in BAD_ARGUMENTS],
)
def test_bad_argument_raises_value_error_naming_it(name, kwargs, match):
    kwargs = {"n_samples": 10, **kwargs}
    n_samples = kwargs.pop("n_samples")
    with pytest.raises(ValueError, match=match):
        GENERATORS[name](n_samples, **kwargs)


def test_errors_list_the_allowed_values():
    with pytest.raises(ValueError, match="support") as info:
        sprites(10, support="corner")
    assert all(s in str(info.value) for s in ("diagonal", "l_shape", "'corner'"))
    with pytest.raises(ValueError, match="split") as info:
        sprites(10, split="test")
    assert all(s in str(info.value) for s in ("'id'", "'ood'", "'all'", "'test'"))
    with pytest.raises(ValueError, match=r"\(0.0, 1.0\]"):
        sprites(10, delta=2.0)
    with pytest.raises(ValueError, match=r"image_size >= 12"):
        make_sprites(10, image_size=8)
