"""The tiny-budget frontier: accuracy against parameters and costs (:mod:`.run`)."""
