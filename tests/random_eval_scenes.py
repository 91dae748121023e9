"""Randomised scenes for evaluator tests: GT ids and messy predictions (shared by tests/evaluation and
tests/apps; tests/ is on sys.path through its conftest)."""
import numpy as np

from pcseg.structures import InstanceSet

CLASSES = [3, 4, 5, 5, 5, 7, 7, 39, 1, 2, 40, 0]  # benchmark classes (chair/table often), wall, floor, void


def random_scene(rng, n=3000):
    """GT ids with big, small, void and non-benchmark objects, and noisy, duplicated, merged, mislabelled,
    tiny and off-GT predictions with tied scores."""
    gt = np.zeros(n, np.int64)
    order = rng.permutation(n)
    pos, objects = 0, []
    for i in range(int(rng.integers(4, 14))):
        size = int(rng.choice([40, 90, 100, 101, 150, 300, 500]))
        idx = order[pos:pos + size]
        pos += size
        label = int(rng.choice(CLASSES))
        gt[idx] = label * 1000 + i + 1 if label else 0
        objects.append((idx, label))
    masks, labels, scores = [], [], []

    def add(idx, label):
        m = np.zeros(n, bool)
        m[idx] = True
        masks.append(m)
        labels.append(label)
        scores.append(round(float(rng.random()), 1))  # one decimal: many ties

    for idx, label in objects:
        for _ in range(int(rng.integers(0, 3))):
            keep = idx[rng.random(idx.shape[0]) < rng.uniform(0.3, 1.0)]
            noise = rng.choice(n, int(rng.integers(0, 200)), replace=False)
            add(np.r_[keep, noise], label if rng.random() < 0.8 else int(rng.choice(CLASSES)))
    for _ in range(int(rng.integers(0, 4))):  # merges: one prediction over two objects (AP25 order effects)
        a, b = rng.choice(len(objects), 2)
        add(np.r_[objects[a][0], objects[b][0][: objects[b][0].shape[0] // 2]], objects[a][1])
    for _ in range(int(rng.integers(0, 3))):  # blobs anywhere, some tiny
        add(rng.choice(n, int(rng.choice([50, 99, 120, 400])), replace=False), int(rng.choice(CLASSES)))
    perm = rng.permutation(len(masks))
    m = np.array(masks, bool).reshape(-1, n)[perm]
    return gt, InstanceSet(m, np.array(labels, np.int64)[perm], np.array(scores)[perm])
