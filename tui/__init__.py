"""The driver's terminal screen (Textual), in Japanese and English.

Nothing imports this package: ``roadpatrol`` finds its command and screen through the
``roadpatrol.commands`` and ``roadpatrol.screens`` entry points.
"""
