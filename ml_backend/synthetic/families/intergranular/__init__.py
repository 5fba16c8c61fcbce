"""Family ``intergranular``: holocrystalline to hypocrystalline basalts and dolerites.

Structurally unlike the original generator, whose crystals float apart in glass:

- fabric: crystals grow from nuclei in an anisotropic grain-growth tessellation
  (:mod:`.tessellation`), so they touch along shared straight or curved boundaries;
  plagioclase laths of very variable aspect, rounded or embayed olivine, prismatic or
  granular clinopyroxene, late oikocrysts enclosing early laths (ophitic / subophitic),
  glomerocrysts, equant, skeletal / cruciform and needle-shaped oxides (:mod:`.fabric`);
- groundmass: a dense intergranular mesh of small plagioclase laths with granular
  clinopyroxene and oxide, and interstitial mesostasis in hypocrystalline fields, very fine
  to almost microphenocryst-sized (:mod:`.groundmass`); labelled Groundmass, instance 0;
- composition: per-field shifts of each phase's eta, normal zoning of plagioclase and olivine,
  hourglass sector zoning of clinopyroxene, iddingsite-like olivine rims (:mod:`.composition`);
- preparation: plucked grains (epoxy holes), polishing relief and scratches (:mod:`.preparation`);
- detector: heavy-tailed PSF, topographic edge contrast, carbon-coat waves, Poisson noise
  at varied dose, a saturating logistic or logarithmic response, 8- or 16-bit levels
  (:mod:`.detector`). Pixel sizes 1-5 µm, log-uniform.

    from ml_backend.synthetic.families.intergranular import generate

    section = generate(512, seed=7)   # a SyntheticSection
"""

from ml_backend.synthetic.families.intergranular.field import generate

__all__ = ["generate"]
