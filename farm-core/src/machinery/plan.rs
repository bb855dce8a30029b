//! The reference meaning of a request: which tasks exist and which argv each one runs.
//!
//! Every executor must behave as this module says: the local executor
//! ([`exec`](crate::exec)) follows it directly, and generated scripts
//! ([`script`](crate::script)) are property-tested against it under a real bash.

use crate::command::{Placeholder, Segment};
use crate::frames::FrameSet;
use crate::request::{JobRequest, Repeat};

/// One schedulable unit of a job: a chunk of frames, or the whole job when it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Position among the job's tasks, from 0 (a Slurm array index, an HTCondor proc id).
    pub index: u32,
    /// The chunk's frames; `None` for a request without frames.
    pub frames: Option<FrameSet>,
}

/// One command invocation within a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Which entry of `commands` this is.
    pub command_index: usize,
    /// The frame it renders, when commands repeat per frame.
    pub frame: Option<u32>,
    /// The argv with placeholders substituted.
    pub argv: Vec<String>,
    /// The `FARM_*` variables set for it, in addition to the request's environment.
    pub farm_env: Vec<(&'static str, String)>,
}

impl JobRequest {
    /// The job's tasks, in index order.
    pub fn tasks(&self) -> Vec<Task> {
        match &self.frames {
            None => vec![Task {
                index: 0,
                frames: None,
            }],
            Some(frames) => frames
                .chunks(self.chunk_size.max(1))
                .into_iter()
                .map(|c| Task {
                    index: c.index,
                    frames: Some(c.frames),
                })
                .collect(),
        }
    }

    /// Number of tasks, without building them.
    pub fn task_count(&self) -> usize {
        self.frames
            .as_ref()
            .map_or(1, |f| f.chunk_count(self.chunk_size.max(1)))
    }

    /// Total frames (1 for a request without frames, which runs once).
    pub fn frame_count(&self) -> usize {
        self.frames.as_ref().map_or(1, FrameSet::len)
    }

    /// The steps of one task in execution order. Execution stops at the first step that
    /// fails. The request must be valid.
    pub fn steps(&self, task: &Task) -> Vec<Step> {
        let templates: Vec<Vec<Vec<Segment>>> = self
            .commands
            .iter()
            .map(|c| c.templates().expect("validated request"))
            .collect();
        let frames: Vec<Option<u32>> = match (&task.frames, self.repeat) {
            (Some(frames), Repeat::PerFrame) => frames.iter().map(Some).collect(),
            _ => vec![None],
        };
        let mut steps = Vec::new();
        for frame in frames {
            let env = self.farm_env(task, frame);
            for (command_index, template) in templates.iter().enumerate() {
                let argv = template
                    .iter()
                    .map(|segments| {
                        crate::command::substitute(segments, |p| {
                            placeholder_value(self, task, frame, p)
                        })
                    })
                    .collect();
                steps.push(Step {
                    command_index,
                    frame,
                    argv,
                    farm_env: env.clone(),
                });
            }
        }
        steps
    }

    /// The `FARM_*` variables of a task (and frame, when commands repeat per frame).
    pub fn farm_env(&self, task: &Task, frame: Option<u32>) -> Vec<(&'static str, String)> {
        let mut env = vec![(
            Placeholder::RenderContext.env_var(),
            self.render_context.to_string(),
        )];
        env.push((Placeholder::ChunkIndex.env_var(), task.index.to_string()));
        if let Some(frames) = &task.frames {
            env.push((
                Placeholder::ChunkFirst.env_var(),
                frames.first().to_string(),
            ));
            env.push((Placeholder::ChunkLast.env_var(), frames.last().to_string()));
        }
        if let Some(frame) = frame {
            env.push((Placeholder::Frame.env_var(), frame.to_string()));
        }
        env
    }
}

fn placeholder_value(
    request: &JobRequest,
    task: &Task,
    frame: Option<u32>,
    placeholder: Placeholder,
) -> String {
    let frames = task.frames.as_ref();
    match placeholder {
        Placeholder::Frame => frame.map(|f| f.to_string()),
        Placeholder::ChunkFirst => frames.map(|f| f.first().to_string()),
        Placeholder::ChunkLast => frames.map(|f| f.last().to_string()),
        Placeholder::ChunkIndex => Some(task.index.to_string()),
        Placeholder::RenderContext => Some(request.render_context.to_string()),
    }
    .expect("validated request: placeholders match the frame settings")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(yaml: &str) -> JobRequest {
        let r = JobRequest::from_yaml_str(yaml).unwrap();
        r.validate().unwrap();
        r
    }

    #[test]
    fn per_frame_steps_repeat_the_command_list_for_each_frame() {
        let r = req(
            "name: x\ncommands: [[render, 'f{frame}'], [denoise, '{frame}']]\nframes: 1-5\nchunk_size: 2\n",
        );
        let tasks = r.tasks();
        assert_eq!(tasks.len(), 3);
        assert_eq!(r.task_count(), 3);
        let argvs: Vec<Vec<String>> = r.steps(&tasks[1]).into_iter().map(|s| s.argv).collect();
        assert_eq!(
            argvs,
            [
                vec!["render", "f3"],
                vec!["denoise", "3"],
                vec!["render", "f4"],
                vec!["denoise", "4"]
            ]
        );
        let last = r.steps(&tasks[2]);
        assert_eq!(last.len(), 2);
        assert!(last[0].farm_env.contains(&("FARM_FRAME", "5".into())));
        assert!(last[0].farm_env.contains(&("FARM_CHUNK_INDEX", "2".into())));
    }

    #[test]
    fn per_chunk_steps_run_once_with_chunk_bounds() {
        let r = req(
            "name: x\ncommands: [[render, '{chunk_first}-{chunk_last}', '{render_context}']]\n\
             frames: 1001-1010\nchunk_size: 4\nrepeat: per_chunk\n\
             render_context: 6f1c0d9e-3b0a-4c1e-9d55-2f0a5b7c8e91\n",
        );
        let steps = r.steps(&r.tasks()[2]);
        assert_eq!(steps.len(), 1);
        assert_eq!(
            steps[0].argv,
            [
                "render",
                "1009-1010",
                "6f1c0d9e-3b0a-4c1e-9d55-2f0a5b7c8e91"
            ]
        );
        assert!(!steps[0].farm_env.iter().any(|(k, _)| *k == "FARM_FRAME"));
    }

    #[test]
    fn a_request_without_frames_is_one_task_run_once() {
        let r = req("name: x\ncommands: [[a], [b]]\n");
        assert_eq!(
            r.tasks(),
            [Task {
                index: 0,
                frames: None
            }]
        );
        let steps = r.steps(&r.tasks()[0]);
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[0]
                .farm_env
                .iter()
                .map(|(k, _)| *k)
                .collect::<Vec<_>>(),
            ["FARM_RENDER_CONTEXT", "FARM_CHUNK_INDEX"]
        );
    }
}
