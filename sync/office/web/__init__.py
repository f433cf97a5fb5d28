"""The office web console (`roadpatrol office serve`): map, review queue and repair workflow."""
