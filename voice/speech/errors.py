"""What the speech providers raise. Messages name the provider and what went wrong, never a key."""


class SpeechError(Exception):
    """Base of every speech provider failure."""


class SpeechUnavailable(SpeechError):
    """The provider cannot serve this request as configured: no key, a key refused, a language
    it does not serve, an unknown voice. Retrying does not help; the configuration must change."""


class SpeechProviderError(SpeechError):
    """The provider failed this time: an HTTP error, a timeout, a dropped socket, an answer that
    is not what its protocol promises. A later request may succeed."""
