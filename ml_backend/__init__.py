"""Imaging core, segmenters and the Label Studio ML backend of scrAiber."""
