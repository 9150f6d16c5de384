"""Item response theory: Rasch CML, MML graded/GPCM models, scores, information, item fit, DIF and
short forms."""
from instrument.irt.mml import IRTResult, irt
from instrument.irt.rasch import RaschResult, person_parameters, rasch
from instrument.irt.scoring import fscores, information, item_information

__all__ = ["IRTResult", "RaschResult", "fscores", "information", "irt", "item_information",
           "person_parameters", "rasch"]
