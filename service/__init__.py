"""elcrec's service layer (the top-level folders of the design card; elcrec/layers.py checks that this one is ours)."""

ELCREC_LAYER = "service"
