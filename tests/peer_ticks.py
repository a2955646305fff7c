"""Which peer class each method is compared with, and the test that compares: the README's method table renders its
ticks from this table (`tools/claims.py`), and `conftest.py` fails each test named here that does not construct the
class named with it. The mark is '✓' where the test finds the maps equal (to 1e-4 after normalisation), with a note
where that holds only up to what the note says; '≠' where fastcam's definition differs on purpose, as the note says
(the README's footnote) and the test shows. Plain Python, no import: `tools/make_readme.py` reads it too."""

PGC, TC, CAPTUM = 'pytorch-grad-cam', 'torchcam', 'captum'
PM, TXT = 'test_peer_methods.py::', 'test_text.py::'

def pgc(name, test, mark='✓', note=None): return ('pytorch_grad_cam.' + name, test, mark, note)
def tc(name, test, mark='✓', note=None): return ('torchcam.methods.' + name, test, mark, note)
def captum(name, test, mark='✓', note=None): return ('captum.attr.' + name, test, mark, note)

SIGN = "{}'s sign is arbitrary: pytorch-grad-cam keeps {}'s, fastcam fixes it; equal up to the sign"

SCORECAM = ("Score-CAM has three definitions: fastcam's is the authors' code, each channel weighing the class's softmax "
            "probability on the input masked by it; pytorch-grad-cam weighs by a softmax over the channels of the "
            "class's logit, torchcam by a softmax over the channels of the logit's rise above the unmasked input's. "
            "The test works out all three by hand")

# (method, peer): (the peer's class, the test as file::name[id], mark, note or None)
PEER_TICKS = {
    ('cam', TC): tc('CAM', PM + 'test_equals_torchcam[cam]'),
    ('gradcam', PGC): pgc('GradCAM', PM + 'test_equals_pytorch_grad_cam[gradcam]'),
    ('gradcam', TC): tc('GradCAM', PM + 'test_equals_torchcam[gradcam]'),
    ('gradcam', CAPTUM): captum('LayerGradCam', 'test_peers.py::test_gradcam_equals_captum[0-0.6]'),
    ('gradcam++', PGC): pgc('GradCAMPlusPlus', PM + 'test_equals_pytorch_grad_cam[gradcam++]'),
    ('gradcam++', TC): tc('GradCAMpp', PM + 'test_equals_torchcam[gradcam++]', '≠',
                          "torchcam's Grad-CAM++ never divides its alpha (its `div_` acts on a boolean-masked copy), so "
                          "it weighs by Σ g²·ReLU(g); fastcam divides, as the paper and pytorch-grad-cam. The test "
                          "works torchcam's out by hand"),
    ('hirescam', PGC): pgc('HiResCAM', PM + 'test_equals_pytorch_grad_cam[hirescam]'),
    ('xgradcam', PGC): pgc('XGradCAM', PM + 'test_equals_pytorch_grad_cam[xgradcam]'),
    ('xgradcam', TC): tc('XGradCAM', PM + 'test_equals_torchcam[xgradcam]'),
    ('layercam', PGC): pgc('LayerCAM', PM + 'test_equals_pytorch_grad_cam[layercam]'),
    ('layercam', TC): tc('LayerCAM', PM + 'test_equals_torchcam[layercam]'),
    ('eigencam', PGC): pgc('EigenCAM', PM + 'test_projections_equal_pytorch_grad_cam_up_to_sign[eigencam]', '✓',
                           SIGN.format("An SVD", 'LAPACK')),
    ('gradcamelementwise', PGC): pgc('GradCAMElementWise', PM + 'test_equals_pytorch_grad_cam[gradcamelementwise]'),
    ('eigengradcam', PGC): pgc('EigenGradCAM', PM + 'test_projections_equal_pytorch_grad_cam_up_to_sign[eigengradcam]',
                               '✓', SIGN.format("An SVD", 'LAPACK')),
    ('kpcacam', PGC): pgc('KPCA_CAM', PM + 'test_projections_equal_pytorch_grad_cam_up_to_sign[kpcacam]', '✓',
                          SIGN.format("A kernel PCA", 'scikit-learn')),
    ('fem', PGC): pgc('FEM', PM + 'test_equals_pytorch_grad_cam[fem]'),
    ('segeigencam', PGC): pgc('SegEigenCAM', PM + 'test_segeigencam_on_a_unet_equals_pytorch_grad_cam'),
    ('randomcam', PGC): pgc('RandomCAM', PM + 'test_randomcam_with_the_same_draws'),
    ('scorecam', PGC): pgc('ScoreCAM', PM + 'test_scorecam_against_both_peers', '≠', SCORECAM),
    ('scorecam', TC): tc('ScoreCAM', PM + 'test_scorecam_against_both_peers', '≠', SCORECAM),
    ('sscam', TC): tc('SSCAM', PM + 'test_equals_torchcam[sscam]'),
    ('iscam', TC): tc('ISCAM', PM + 'test_equals_torchcam[iscam]'),
    ('ablationcam', PGC): pgc('AblationCAM', PM + 'test_equals_pytorch_grad_cam[ablationcam]'),
    ('guidedbackprop', PGC): pgc('GuidedBackpropReLUModel', PM + 'test_guided_backprop_equals_pytorch_grad_cam'),
    ('guidedbackprop', CAPTUM): captum('GuidedBackprop', PM + 'test_guided_backprop_equals_captum'),
    ('guidedgradcam', PGC): pgc('GuidedBackpropReLUModel', PM + 'test_guided_backprop_equals_pytorch_grad_cam', '✓',
                                "pytorch-grad-cam has no class for it: its guided backpropagation × its Grad-CAM, as "
                                "its examples do"),
    ('shapleycam', PGC): pgc('ShapleyCAM', PM + 'test_shapleycam_equals_pytorch_grad_cam'),
    ('finercam', PGC): pgc('FinerCAM', PM + 'test_finercam_equals_pytorch_grad_cam'),
    ('refinecam', PGC): pgc('RefineCAM', PM + 'test_several_layers_equal_pytorch_grad_cam', '✓',
                            "pytorch-grad-cam scales each layer's map after upsampling it to the input, fastcam before: "
                            "equal where the layers have the input's size, as in the test"),
    ('smoothgradcam++', TC): tc('SmoothGradCAMpp', PM + 'test_smoothgradcampp_and_torchcam', '≠',
                                "torchcam weighs the last noisy copy's activation with that copy's gradient; fastcam, as "
                                "the paper, the input's activation with the gradients averaged over the copies. With "
                                "`smoothgradcampp_weights(grads='last')` fastcam's weights are torchcam's"),
    ('fullgrad', PGC): pgc('FullGrad', PM + 'test_fullgrad_equals_pytorch_grad_cam[False]'),
    ('intgrad', CAPTUM): captum('LayerIntegratedGradients', TXT + 'test_intgrad_equals_captum'),
    ('occlusion', CAPTUM): captum('Occlusion', TXT + 'test_token_methods_equal_captum[occlusion]'),
    ('gradxinput', CAPTUM): captum('LayerGradientXActivation', TXT + 'test_token_methods_equal_captum[gradxinput]'),
    ('smoothgrad', CAPTUM): captum('NoiseTunnel', TXT + 'test_token_methods_equal_captum[smoothgrad]'),
    ('legrad', TC): tc('LeGrad', 'test_attention.py::test_legrad_equals_torchcam'),
}
