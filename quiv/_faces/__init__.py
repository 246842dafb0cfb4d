"""The public faces: AsyncQuiv and Quiv (with its loop thread), and what they share."""
