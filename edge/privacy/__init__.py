"""Privacy on the vehicle: faces and plates are blurred before an image is stored or sent.

(Nothing is imported here: ``python -m edge.privacy.worker`` must find its module
unloaded.)
"""
