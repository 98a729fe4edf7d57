"""DualUseClassifier: scikit-learn behaviour with the stub encoder and tiny data (fast)."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from dualuse.errors import InvalidArgumentError
from dualuse.model import DualUseClassifier, fit_temperature

TEXTS = [
    "DJI MAVIC 3 QUADCOPTER", "FPV DRONE 7 INCH", "КВАДРОКОПТЕР DJI MINI 4", "无人机 航拍",
    "AGRAS T40 AGRICULTURAL DRONE", "QUADCOPTER WITH 4K CAMERA",
    "STM32F103C8T6 MCU", "FPGA XC7Z020", "МИКРОСХЕМА ИНТЕГРАЛЬНАЯ", "集成电路 芯片",
    "MICROCONTROLLER ATMEGA328P", "DDR4 MEMORY IC",
    "CERAMIC FLOOR TILES", "COTTON T-SHIRTS", "ПЛИТКА КЕРАМИЧЕСКАЯ", "陶瓷砖",
    "PASSENGER CAR TOYOTA", "GREEN TEA 500G",
]
LABELS = ["uav"] * 6 + ["integrated_circuits"] * 6 + ["none"] * 6


def small(**kw):
    params = dict(encoder="stub", n_char_features=2**10, calibration_folds=2, C=5.0)
    params.update(kw)
    return DualUseClassifier(**params)


def test_init_only_stores_arguments():
    clf = DualUseClassifier(encoder="no-such-encoder", C=-1)  # no validation in __init__
    assert clf.get_params()["encoder"] == "no-such-encoder"
    assert not hasattr(clf, "classes_")


def test_fit_returns_self_and_learns_underscore_attributes():
    clf = small()
    assert clf.fit(TEXTS, LABELS) is clf
    assert list(clf.classes_) == ["integrated_circuits", "none", "uav"]
    assert clf.coef_.shape == (3, clf.n_features_)
    assert clf.temperature_ > 0
    proba = clf.predict_proba(["DJI MAVIC 3 PRO DRONE", "ceramic tiles"])
    assert proba.shape == (2, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert list(clf.predict(["DJI MAVIC 3 PRO DRONE"])) == ["uav"]


def test_unfitted_raises_standard_error():
    with pytest.raises(NotFittedError):
        small().predict(["x"])


def test_deterministic():
    a = small().fit(TEXTS, LABELS)
    b = small().fit(TEXTS, LABELS)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.temperature_ == b.temperature_


def test_embeddings_computed_once_can_be_passed_back():
    clf = small().fit(TEXTS, LABELS)
    X = ["DJI MAVIC 3 PRO DRONE", "ceramic tiles", "ATMEGA328P-PU"]
    emb = clf.embed(X)
    assert emb.shape == (3, 16) and emb.dtype == np.float32
    np.testing.assert_allclose(clf.predict_proba(X, embeddings=emb), clf.predict_proba(X), rtol=1e-6)
    # other vectors change the result: they are really used, not recomputed
    assert not np.allclose(clf.predict_proba(X, embeddings=emb[::-1].copy()), clf.predict_proba(X))
    with pytest.raises(InvalidArgumentError, match=r"expected embeddings of shape \(3, 16\)"):
        clf.predict_proba(X, embeddings=emb[:2])
    assert clf.embed([]).shape == (0, 16)
    no_enc = small(encoder=None).fit(TEXTS, LABELS)
    assert no_enc.embed(X) is None
    np.testing.assert_allclose(no_enc.predict_proba(X, embeddings=None), no_enc.predict_proba(X))


def test_bad_x_is_a_clear_error():
    clf = small().fit(TEXTS, LABELS)
    with pytest.raises(InvalidArgumentError, match="single str"):
        clf.predict("DJI MAVIC")
    with pytest.raises(InvalidArgumentError, match="item 1 is int"):
        clf.predict(["a", 5])
    with pytest.raises(InvalidArgumentError, match="differ in length"):
        small().fit(TEXTS, LABELS[:-1])


def test_none_and_nan_texts_are_treated_as_empty():
    clf = small().fit(TEXTS, LABELS)
    assert clf.predict_proba([None, float("nan"), ""]).shape == (3, 3)
    assert clf.predict_proba([]).shape == (0, 3)


def test_works_in_pipeline_and_grid_search():
    pipe = Pipeline([("clf", small())])
    grid = GridSearchCV(pipe, {"clf__C": [1.0, 10.0]}, cv=2, scoring="accuracy")
    grid.fit(TEXTS, LABELS)
    assert grid.best_params_["clf__C"] in (1.0, 10.0)
    assert len(grid.predict(["STM32 MCU"])) == 1


def test_clone_and_set_params():
    from sklearn.base import clone

    clf = small().fit(TEXTS, LABELS)
    c2 = clone(clf)
    assert not hasattr(c2, "coef_")
    c2.set_params(use_rules=False).fit(TEXTS, LABELS)
    assert c2.n_features_ == clf.n_features_ - 23


def test_sklearn_tags_declare_string_input():
    tags = small().__sklearn_tags__()
    assert tags.input_tags.string and not tags.input_tags.two_d_array


def test_temperature_recovers_a_known_scale():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 4)) * 2
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    y = np.array([rng.choice(4, p=row) for row in p])
    t = fit_temperature(true_logits * 3.0, y)  # logits 3x too confident
    assert 2.5 < t < 3.5


# scikit-learn's own estimator checks that apply to an estimator on raw strings. check_estimator()
# itself runs only the cloneability check for string-input estimators (its generated data is numeric),
# so the relevant API checks are called one by one; the numeric-data checks (check_fit_check_is_fitted,
# check_dont_overwrite_parameters …) feed 2-D float arrays and do not apply.
SKLEARN_CHECKS = [
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_estimators_unfitted",
    "check_n_features_in_after_fitting",
    "check_valid_tag_types",
    "check_mixin_order",
]


@pytest.mark.parametrize("check", SKLEARN_CHECKS)
def test_sklearn_estimator_checks(check):
    import warnings

    from sklearn.utils import estimator_checks

    est = DualUseClassifier(encoder="stub", n_char_features=2**10, use_rules=False, calibration_folds=0, max_iter=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(estimator_checks, check)(type(est).__name__, est)


def test_check_estimator_passes():
    from sklearn.utils.estimator_checks import check_estimator

    est = DualUseClassifier(encoder="stub", n_char_features=2**10, use_rules=False, calibration_folds=0, max_iter=200)
    results = check_estimator(est, on_fail=None)
    assert results and all(r["status"] in ("passed", "skipped", "xfail") for r in results), results
