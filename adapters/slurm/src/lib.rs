//! Slurm adapter: sbatch scripts, the CLI (sbatch, squeue, sacct, scancel) and slurmrestd transports.
//!
//! Not implemented yet.
