from otter.test_files import test_case

OK_FORMAT = False

name = "q3_split"
points = 2

@test_case(points=None, hidden=False)
def test_split_keeps_treatments_apart(split_by_treatment):
    import numpy as np
    groups = np.repeat(np.arange(12), 4)
    labels = groups % 3
    train_idx, val_idx = split_by_treatment(groups, labels, 0.25, seed=0)
    both = set(groups[np.asarray(train_idx)]) & set(groups[np.asarray(val_idx)])
    assert not both, f'treatments {sorted(both)} have images in training and in validation'
    assert len(train_idx) + len(val_idx) == len(groups), f'{len(train_idx)} + {len(val_idx)} indices returned, expected every one of the {len(groups)} images once'

