"""The composition room: settings in, running processes out.

The command line (``scraiber``), the wiring of each process's services from the settings
(web app, harvest worker, retraining cycle, fast learner), the harvest worker's process
management, the local demo stack and the Label Studio launcher live here. The four rooms
(``label_config`` ← ``ml_backend`` ← ``active_learning`` ← ``tracking_analysis``) never
import this package; it imports them.
"""
