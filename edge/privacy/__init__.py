"""Privacy on the vehicle: faces and plates are blurred before an image is stored or sent."""

from edge.privacy.config import PrivacyConfig
from edge.privacy.detect import PrivacyError

__all__ = ["PrivacyConfig", "PrivacyError"]
