"""Helpers shared by the test folders (one module each: service apps and Redis servers, the retraining job,
the shared data sets), imported from here rather than across test folders."""
