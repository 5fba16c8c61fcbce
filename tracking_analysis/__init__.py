"""Tracking analysis: what the experts' work says about the pre-annotations and the implicit labels.

The pieces, in the order data flows through them:

* :mod:`tracking_analysis.snapshot`: a project's Label Studio records (tasks, predictions,
  annotations incl. skips, draft counts, questionnaire answers) reduced to what the analysis
  reads, annotators pseudonymised, brush results decoded to class maps; saved as JSON.
* :mod:`tracking_analysis.records`: snapshot -> harvest records (the same arithmetic as the
  harvester) and implicit labels with confidence.
* :mod:`tracking_analysis.frame`, :mod:`tracking_analysis.indicators`,
  :mod:`tracking_analysis.sessions`, :mod:`tracking_analysis.agreement`: pure indicator
  functions over plain records (``HarvestRecord`` from a snapshot or the harvest log).
* :mod:`tracking_analysis.quality`: implicit labels against ground truth (accuracy, IoU,
  reliability curve, expected calibration error).
* :mod:`tracking_analysis.questionnaire`, :mod:`tracking_analysis.learning_curve`: the
  post-session questionnaire and the implicit-vs-explicit learning curves.
* :mod:`tracking_analysis.report` (``scraiber report``) and :mod:`tracking_analysis.export`
  (``scraiber export``: the open-data package) with its parts: :mod:`~tracking_analysis.datapackage`
  (Frictionless resources, checks, reading labels back), :mod:`~tracking_analysis.package_images`,
  :mod:`~tracking_analysis.dataset_metadata` (CFF, DataCite, Zenodo, RO-Crate), :mod:`~tracking_analysis.coco`,
  :mod:`~tracking_analysis.model_card`; :mod:`tracking_analysis.zenodo` (``scraiber publish``).

Nothing imports this package; it may import ``active_learning``, ``ml_backend`` and ``label_config``.
"""
