"""ISO 639-1 codes mapped to the language codes of many-to-many translation models."""

from __future__ import annotations

# NLLB-200 uses FLORES-200 codes; M2M100 uses ISO 639-1 (with a few exceptions) directly.
NLLB_CODES: dict[str, str] = {
    "ar": "arb_Arab", "bn": "ben_Beng", "de": "deu_Latn", "en": "eng_Latn", "es": "spa_Latn",
    "fa": "pes_Arab", "fr": "fra_Latn", "hi": "hin_Deva", "id": "ind_Latn", "it": "ita_Latn",
    "ja": "jpn_Jpan", "jv": "jav_Latn", "ko": "kor_Hang", "ms": "zsm_Latn", "nl": "nld_Latn",
    "pl": "pol_Latn", "pt": "por_Latn", "ru": "rus_Cyrl", "su": "sun_Latn", "th": "tha_Thai",
    "tl": "tgl_Latn", "tr": "tur_Latn", "uk": "ukr_Cyrl", "ur": "urd_Arab", "vi": "vie_Latn",
    "zh": "zho_Hans",
}


def nllb_code(lang: str) -> str | None:
    """The NLLB code of an ISO 639-1 language, or None when unknown."""
    return NLLB_CODES.get(lang.lower())
