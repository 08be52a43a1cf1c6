"""The `elcrec` command line, above the layers it drives: training/ (train, evaluate, retrain, ...) and service/
(serve). Neither of those imports it."""
