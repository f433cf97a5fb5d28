"""The driver's terminal screen (Textual), in Japanese and English.

Only the top layer imports it: edge.cli lists its command (``roadpatrol tui``) and edge.app
shows its screen (``tui.screen.run``) during ``roadpatrol run`` and ``demo``.
"""
