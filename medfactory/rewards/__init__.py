"""Rewards for reinforcement: verifiers that score a prompt+response text, the reward
server LLaMA-Factory's PPO posts to (`reward_model_type: api`), and a reward model's
accuracy on held-out preference pairs."""
