"""Every user-facing error derives from ByovError, which the entry points print without a
traceback; each keeps the standard base that callers may already catch."""
from byov.methods.byov_method import ModelConfigError
from byov.checkpoint import CheckpointError
from byov.data.layout import DataError
from byov.training.engine import NonFiniteLossError
from byov.errors import ByovError
from byov.eval.io import EvalInputError
from byov.features.manifest import FeatureCacheError
from byov.models.frame_encoders import WeightsNotFoundError


def test_user_errors_share_the_base_the_entry_points_catch():
    for cls, std in ((ModelConfigError, ValueError), (CheckpointError, Exception),
                     (DataError, Exception), (NonFiniteLossError, RuntimeError),
                     (EvalInputError, ValueError), (FeatureCacheError, DataError),
                     (WeightsNotFoundError, FileNotFoundError)):
        assert issubclass(cls, ByovError) and issubclass(cls, std), cls
    assert not issubclass(KeyError, ByovError)  # bugs keep their tracebacks
