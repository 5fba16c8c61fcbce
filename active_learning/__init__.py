"""Event log, harvesting of implicit labels, training, query strategies, MLflow and artefact stores."""
