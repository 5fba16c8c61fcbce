"""Models-from-code file of scrAiber's MLflow pyfunc model (see :mod:`active_learning.mlflow_model`).

MLflow copies this file into every logged model and runs it at load time: no pickled
object is stored. It only names the model class; the weights come from ``artifacts/fcn``.
"""

from mlflow.models import set_model

from active_learning.mlflow_model import MineralSegmentationModel

set_model(MineralSegmentationModel())
