"""Predictions and class activation maps of a whole folder of images, one `get_preds` pass split over several processes
(GPUs, or CPU processes with `--cpu`), gathered in dataset order and written to one file by rank 0.

    accelerate launch examples/distributed_cams.py --model pets.pkl --path images --out cams.pt
    torchrun --nproc_per_node 2 examples/distributed_cams.py --cpu --out cams.pt    # synthetic pets, 2 CPU processes
"""
import tempfile
from fastai.vision.all import *
from fastai.distributed import *
from fastcam.all import *

def gloo_broadcast(self, t, rank):
    "fastai's `DistributedDL._broadcast` sends the items' order with `.cuda()` (NCCL); CPU processes need gloo"
    t = LongTensor(t)
    torch.distributed.broadcast(t, rank)
    return t.tolist()

def synthetic_learner(n:int=200, size:int=96, bs:int=64)->Learner:
    "An untrained resnet18 on synthetic pets, the same on every rank (each writes its own copy of the images)"
    path = synth_pets(tempfile.mkdtemp(), n=n, size=size, seed=0)
    dls = ImageDataLoaders.from_name_func(path, get_image_files(path), valid_pct=0.5, seed=21, label_func=is_cat,
                                          bs=bs, num_workers=0)
    set_seed(0)
    return vision_learner(dls, resnet18, pretrained=False)

def dataset_cams(learn:Learner, dl:DataLoader, cpu:bool=False)->dict:
    "Predictions, maps and (where `dl` has labels) targets and losses of every item of `dl`, in dataset order"
    if cpu: DistributedDL._broadcast = gloo_broadcast
    with learn.distrib_ctx(cpu=cpu, sync_bn=False):  # SyncBatchNorm needs GPUs; nothing is trained here anyway
        interp = CAMInterpretation.from_learner(learn, dl=dl)
    return dict(items=[str(o) for o in dl.items], vocab=list(learn.dls.vocab), preds=interp.preds,
                targs=interp.targs, losses=interp.losses, maps=interp.maps, layer=interp.cam.layer_name)

@call_parse
def main(model:str=None, # An exported learner (`learn.export()`); default: an untrained resnet18 on synthetic pets
         path:str=None, # A folder of images to explain (no labels needed); default: the validation set
         out:str='cams.pt', # The file rank 0 writes (`torch.load` it)
         cpu:bool=False, # CPU processes (gloo) instead of GPUs
         bs:int=64, # Batch size per process
         n:int=200, # Synthetic images, without --model
         size:int=96, # Their size in pixels
        ):
    "Write the predictions and maps of every image to `out`, from one pass split over the launched processes"
    learn = synthetic_learner(n, size, bs) if model is None else load_learner(model, cpu=cpu)
    dl = (learn.dls.valid.new(shuffle=False, drop_last=False) if path is None
          else learn.dls.test_dl(get_image_files(path), bs=bs))
    res = dataset_cams(learn, dl, cpu)
    if rank_distrib() == 0: torch.save(res, out)
    return res
