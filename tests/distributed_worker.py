"""One process of `test_distributed.py`: under torchrun it is a rank of fastai's distributed `get_preds`, run alone it is
the single-process reference. Saves what it got to `OUT/rank{rank}.pt` (or `OUT/single.pt`)."""
import runpy, sys, warnings
from pathlib import Path
warnings.filterwarnings('ignore')
import torch
from fastai.text.all import text_classifier_learner, AWD_LSTM, set_seed
from fastai.distributed import DistributedDL, rank_distrib, num_distrib
from fastcam.all import CAMCallback, CAMInterpretation, synth_reviews, review_dls

torch.set_num_threads(1)
out = Path(sys.argv[1])
script = runpy.run_path(str(Path(__file__).parents[1]/'examples'/'distributed_cams.py'))  # the README's script
# fastai's DistributedDL._broadcast needs CUDA (NCCL): on these CPU processes the item order goes through gloo instead
DistributedDL._broadcast = script['gloo_broadcast']
res = {}

# The README script's interpretation: 22 images, 11 in the validation set, 2 per batch: each of 2 ranks reads 3
# batches, and the last item is padding (rank 1 reads item 0 again)
learn = script['synthetic_learner'](n=22, size=64, bs=2)
res['script'] = script['dataset_cams'](learn, learn.dls.valid.new(shuffle=False), cpu=True)
res['unlabelled'] = script['dataset_cams'](learn, learn.dls.test_dl(learn.dls.valid.items), cpu=True)  # new items

# A CAMCallback attached to the learner, in fastai's own distributed get_preds: learn.cam.* aligned with its predictions
learn = script['synthetic_learner'](n=22, size=64, bs=2)
with learn.distrib_ctx(cpu=True, sync_bn=False): plain = learn.get_preds(with_loss=True)
learn.add_cb(CAMCallback())
with learn.distrib_ctx(cpu=True, sync_bn=False):
    preds, targs, losses = learn.get_preds(with_loss=True)
res['get_preds'] = dict(preds=preds, targs=targs, maps=learn.cam.maps, targets=learn.cam.targets,
                        item_idxs=learn.cam.item_idxs, untouched=all(map(torch.equal, plain, (preds, targs, losses))))

# Text: one map per review over its own tokens (padded across ranks for the gather), through fastai's SortedDL
set_seed(0)
tlearn = text_classifier_learner(review_dls(synth_reviews(45, seed=1), bs=2), AWD_LSTM, pretrained=False)
for method in ('gradcam', 'intgrad'):
    with tlearn.distrib_ctx(cpu=True, sync_bn=False):
        interp = CAMInterpretation.from_learner(tlearn, method=method)
    res[f'text {method}'] = dict(preds=interp.preds, targs=interp.targs, losses=interp.losses, maps=interp.maps)

torch.save(res, out/(f'rank{rank_distrib()}.pt' if num_distrib() > 1 else 'single.pt'))
