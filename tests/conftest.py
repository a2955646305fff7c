import tempfile, pytest, torch
from fastai.vision.all import ImageDataLoaders, get_image_files, vision_learner, resnet18, error_rate, set_seed
from fastcam.pets import synth_pets, is_cat

torch.set_num_threads(2)

@pytest.fixture(scope='session')
def pets_path(tmp_path_factory): return synth_pets(tmp_path_factory.mktemp('pets'), n=48, size=64, seed=0)

def make_dls(path, bs=16):
    return ImageDataLoaders.from_name_func(path, get_image_files(path), valid_pct=0.25, seed=21, label_func=is_cat,
                                           bs=bs, num_workers=0)

@pytest.fixture(scope='session')
def trained(pets_path):
    "A tiny learner trained for one quick epoch, shared by read-only tests"
    set_seed(0)
    learn = vision_learner(make_dls(pets_path), resnet18, metrics=error_rate, pretrained=False)
    learn.fit(1, 1e-3)
    return learn

@pytest.fixture
def fresh(pets_path):
    "A fresh untrained learner for tests that change it"
    set_seed(0)
    return vision_learner(make_dls(pets_path), resnet18, metrics=error_rate, pretrained=False)
