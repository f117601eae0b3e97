from otter.test_files import test_case

OK_FORMAT = False

name = "q4_count"
points = 2

@test_case(points=None, hidden=False)
def test_patches(patches_64, patches_224):
    from cellkit import checks
    checks.check_answer(patches_64, 4, name='patches_64', hint='64 / 32 = 2 patches per side')
    checks.check_answer(patches_224, 49, name='patches_224', hint='224 / 32 = 7 patches per side')

