import numpy as np
import pytest

from jooci.targets import KMeansError, assign, fit_kmeans


def test_assign_is_the_nearest_centroid():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 7)).astype(np.float32)
    c = rng.standard_normal((13, 7)).astype(np.float32)
    brute = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    labels, d = assign(x, c, chunk=100, return_distances=True)
    assert np.array_equal(labels, brute.argmin(1))
    assert np.allclose(d, brute.min(1), atol=1e-4)


@pytest.mark.parametrize("backend", ["faiss", "sklearn"])
def test_fit_recovers_separated_blobs(backend):
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0], [10, 0], [0, 10]], dtype=np.float32)
    x = np.concatenate([c + 0.1 * rng.standard_normal((200, 2)) for c in centres]).astype(np.float32)
    res = fit_kmeans(x, 3, seed=0, backend=backend, niter=10)
    found = res.centroids[np.argsort(res.centroids @ np.array([1.0, 3.0]))]
    assert np.allclose(found, centres[np.argsort(centres @ np.array([1.0, 3.0]))], atol=0.1)
    assert res.inertia < 0.05 and res.backend == backend


def test_too_few_frames_and_unknown_backend():
    x = np.zeros((5, 2), dtype=np.float32)
    with pytest.raises(KMeansError, match="raise --fraction"):
        fit_kmeans(x, 10)
    with pytest.raises(KMeansError, match="unknown"):
        fit_kmeans(np.random.default_rng(0).standard_normal((50, 2)).astype(np.float32), 2, backend="magic")
