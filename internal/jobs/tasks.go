package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
)

// Task is a periodic job of another part of labtrail (the S3 export,
// retention): River runs it on the elected leader, once per interval
// across every replica, with the queue's retries and timeout. The part
// hands in a function, so this package needs none of its imports.
type Task struct {
	Name     string // unique among the tasks; names the job in logs and River's tables
	Interval time.Duration
	Run      func(ctx context.Context) error
}

// TaskArgs are a task's job.
type TaskArgs struct {
	Name string `json:"name"`
}

// Kind implements river.JobArgs.
func (TaskArgs) Kind() string { return "labtrail_task" }

type taskWorker struct {
	river.WorkerDefaults[TaskArgs]
	tasks map[string]Task
}

func (w *taskWorker) Work(ctx context.Context, job *river.Job[TaskArgs]) error {
	t, ok := w.tasks[job.Args.Name]
	if !ok {
		// Queued by a replica configured with a task this one lacks.
		return river.JobCancel(fmt.Errorf("no task %q on this replica", job.Args.Name))
	}
	return t.Run(ctx)
}

// taskJobs adds the worker of tasks to workers and returns their
// periodic jobs, each unique per interval and name.
func taskJobs(workers *river.Workers, tasks []Task) ([]*river.PeriodicJob, error) {
	byName := map[string]Task{}
	var out []*river.PeriodicJob
	for _, t := range tasks {
		if _, dup := byName[t.Name]; dup || t.Name == "" || t.Interval < time.Second || t.Run == nil {
			return nil, fmt.Errorf("jobs: task %q: a unique name, an interval of a second or more and a function are required", t.Name)
		}
		byName[t.Name] = t
		args := TaskArgs{Name: t.Name}
		opts := &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: t.Interval}}
		out = append(out, river.NewPeriodicJob(river.PeriodicInterval(t.Interval),
			func() (river.JobArgs, *river.InsertOpts) { return args, opts },
			&river.PeriodicJobOpts{ID: "task_" + t.Name, RunOnStart: true}))
	}
	river.AddWorker(workers, &taskWorker{tasks: byName})
	return out, nil
}
