/**
 * The `opensora` command. Every command has `--help`; errors end with one line on stderr and a
 * non-zero exit code (2 for bad usage or input, 1 for a failure while running; see EXIT).
 */
import { Command, CommanderError, Option } from 'commander';
import { EXIT, UsageError, describeFailure } from './errors.js';

export interface CliIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const defaultIO: CliIO = {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
};

function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got '${v}'`);
    return n;
  };
}
function num(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${v}'`);
    return n;
  };
}
function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

export function buildProgram(io: CliIO = defaultIO): Command {
  const program = new Command('opensora')
    .description('OpenSora.ts: train and sample Open-Sora 1.1 (STDiT2) video diffusion models')
    .version('0.1.0')
    .option('--backend <name>', 'tensor backend: auto, tensorflow, wasm, cpu (default: OPENSORA_BACKEND or auto)')
    .addOption(new Option('--accel <engine>', 'native matrix-product kernels for the wasm/cpu backends (default: OPENSORA_ACCEL or onnxruntime)').choices(['onnxruntime', 'none']))
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .exitOverride();

  program
    .command('doctor')
    .description('report the tensor backend and why, ffmpeg/ffprobe, memory, and what this machine can run')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { json?: boolean }) => {
      const { runDoctor, formatDoctor } = await import('./commands/doctor.js');
      const r = await runDoctor();
      io.stdout((opts.json ? JSON.stringify(r, null, 2) : formatDoctor(r)) + '\n');
    });

  program
    .command('sample')
    .description('generate images and videos: text-to-image, text-to-video, image-to-video, extend, edit, connect, loop')
    .option('-c, --config <file>', 'inference config (JSON, YAML or TS) with the same keys as the flags (camelCase)')
    .option('-p, --prompt <text...>', 'one or more prompts (JSON-in-prompt options allowed: text.{"reference_path": ..., "mask_strategy": ...})')
    .option('--prompt-path <file>', 'a text file with one prompt per line')
    .option('--resolution <name>', 'resolution name, e.g. 144p, 240p, 360p, 480p, 720p (with --aspect-ratio)')
    .option('--aspect-ratio <ratio>', 'H:W as in the reference UI (9:16 is landscape), or a decimal H/W key such as 0.56', '9:16')
    .option('--image-size <hw...>', 'explicit size in pixels: H W')
    .option('--num-frames <n>', 'frames to generate (1 = image)', int('num-frames'))
    .option('--duration <seconds>', 'length in seconds: frames = seconds * fps / frame-interval', num('duration'))
    .option('--fps <n>', 'fps condition given to the model (the file is written at fps / frame-interval)', int('fps'))
    .option('--frame-interval <n>', 'temporal stride the model was trained with', int('frame-interval'))
    .option('--seed <n>', 'random seed', int('seed'))
    .option('--num-sampling-steps <n>', 'sampling steps', int('num-sampling-steps'))
    .option('--steps <n>', 'alias of --num-sampling-steps', int('steps'))
    .addOption(new Option('--scheduler <type>', 'sampler').choices(['iddpm', 'dpm-solver']))
    .option('--cfg-scale <s>', 'classifier-free guidance scale', num('cfg-scale'))
    .option('--cfg-channel <n>', 'guide only the first n latent channels', int('cfg-channel'))
    .option('--reference-path <paths...>', "per prompt: reference image/video paths, ';'-separated")
    .option('--mask-strategy <strategies...>', "per prompt: mask strategy, e.g. '0' or '0,0,0,-8,8' (see @opensora/mask)")
    .option('--loop <n>', 'number of chained clips for long videos', int('loop'))
    .option('--condition-frame-length <n>', 'frames of the previous clip that condition the next', int('condition-frame-length'))
    .option('--num-sample <n>', 'samples per prompt', int('num-sample'))
    .option('--batch-size <n>', 'prompts per batch', int('batch-size'))
    .option('--save-dir <dir>', 'output directory', './samples')
    .option('--sample-name <name>', "file name prefix (default 'sample')")
    .option('--prompt-as-path', 'name files after their prompt')
    .option('--contact-sheet', 'also write a contact-sheet PNG of frames per sample')
    .option('--model <path>', "STDiT2 weights: a trainer checkpoint folder, an official model folder or model.safetensors (+config.json), or a preset name for random weights (default: 'tiny')")
    .option('--vae <spec>', "'builtin' (default) or a diffusers AutoencoderKL folder (sd-vae-ft-ema)")
    .option('--text-encoder <spec>', "'builtin' (default) or a T5 folder (t5-v1_1-xxl)")
    .addOption(new Option('--dtype <dtype>', 'reproduce the reference bf16 rounding of the conditioning scalars').choices(['fp32', 'bf16']))
    .action(async (opts: Record<string, unknown>) => {
      const { runSampleCommand } = await import('./commands/sample.js');
      await runSampleCommand(opts, program.opts(), io);
    });

  const trainOptions = (cmd: Command, h: { config: string; preset: string; maxSteps: string; outputs: string; resume: boolean }) => {
    cmd
      .option('-c, --config <file>', h.config)
      .option('--preset <name>', h.preset)
      .option('--data <csv>', 'dataset CSV (columns path, text, num_frames, height, width, ...)')
      .option('--outputs <dir>', h.outputs)
      .option('--max-steps <n>', h.maxSteps, int('max-steps'))
      .option('--epochs <n>', 'number of epochs', int('epochs'))
      .option('--ckpt-every <k>', 'save a checkpoint every k steps', int('ckpt-every'))
      .option('--log-every <k>', 'log every k steps', int('log-every'))
      .option('--seed <n>', 'random seed', int('seed'))
      .option('--set <key=value>', 'override a config field (repeatable), e.g. --set lr=1e-4 --set dataset.frameInterval=2', collect, []);
    if (h.resume) {
      cmd
        .option('--load <dir>', 'resume exactly from a checkpoint folder (weights, optimizer, sampler, RNG)')
        .option('--ckpt-path <file>', 'initialise the model weights from a checkpoint (weights only)')
        .option('--start-from-scratch', 'with --load: keep weights and optimizer, reset the step and epoch counters');
    }
    return cmd;
  };

  trainOptions(program.command('train').description('train STDiT2 on a dataset CSV (one stage)'), {
    config: 'training config (JSON, YAML or TS)',
    preset:
      'a stage preset: tiny (the smallest, CPU), tiny-image, tiny-stage1, tiny-stage2, tiny-stage3, image, stage1, stage2, stage3, video, benchmark (default: tiny)',
    maxSteps: 'stop after this many optimizer steps',
    outputs: "output folder for checkpoints and logs (default: the config's)",
    resume: true,
  }).action(async (opts: Record<string, unknown>) => {
    const { runTrainCommand } = await import('./commands/train.js');
    await runTrainCommand(opts, program.opts(), io);
  });

  trainOptions(
    program
      .command('pipeline')
      .description('run the multi-stage training (image pretraining, stage 1, stage 2, stage 3); finished stages are not re-run, an interrupted one resumes')
      .option('--stages <names...>', 'stage presets in order (default: the pipeline preset of --preset)'),
    {
      config: 'pipeline config (JSON, YAML or TS): name, outputs, stages [{ name, preset, maxSteps, overrides }]',
      preset: "a pipeline preset: tiny (CPU) or official (default: tiny); with --stages, the run's name",
      maxSteps: 'optimizer steps of every stage',
      outputs: "output folder, one numbered sub-folder per stage (default: the pipeline's)",
      resume: false,
    },
  ).action(async (opts: Record<string, unknown>) => {
    const { runPipelineCommand } = await import('./commands/train.js');
    await runPipelineCommand(opts, program.opts(), io);
  });

  const data = program.command('data').description('dataset tools: info, filter, cut, score, caption, merge, split, stats, synth');
  const dataCmd = (name: string, description: string, configure: (c: Command) => Command) =>
    configure(data.command(name).description(description)).action(async (...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      const { runDataCommand } = await import('./commands/data.js');
      await runDataCommand(name, cmd.args, cmd.opts(), program.opts(), io);
    });
  dataCmd('info', 'probe every row (frames, size, fps, aspect ratio, resolution); unreadable rows are reported and left out', (c) =>
    c.argument('<csv>').option('-o, --output <csv>', 'output CSV (default: <name>_info.csv)').option('--workers <n>', 'parallel probes', int('workers')),
  );
  dataCmd('filter', 'filter rows by frames, size, scores, captions and missing files', (c) =>
    c
      .argument('<csv>')
      .option('-o, --output <csv>', 'output CSV (default: the reference suffix naming)')
      .option('--fmin <n>', 'minimum frames', int('fmin'))
      .option('--fmax <n>', 'maximum frames', int('fmax'))
      .option('--hwmin <n>', 'minimum height*width', int('hwmin'))
      .option('--aesmin <x>', 'minimum aesthetic score', num('aesmin'))
      .option('--flowmin <x>', 'minimum motion score', num('flowmin'))
      .option('--matchmin <x>', 'minimum text-video match score', num('matchmin'))
      .option('--ocrmax <x>', 'maximum text-area score', num('ocrmax'))
      .option('--remove-empty-caption', 'drop rows with an empty caption')
      .option('--lang <code>', "keep captions in this language only, e.g. 'en'")
      .option('--remove-missing', 'drop rows whose file does not exist')
      .option('--clean-caption', 'clean captions (T5 caption cleaning)')
      .option('--dedup', 'drop duplicate paths')
      .option('--shuffle', 'shuffle rows')
      .option('--seed <n>', 'shuffle seed', int('seed'))
      .option('--head <n>', 'keep the first n rows', int('head')),
  );
  dataCmd('cut', 'detect scenes and cut clips (frame-accurate)', (c) =>
    c
      .argument('<csv>')
      .requiredOption('--save-dir <dir>', 'where clips are written')
      .option('-o, --output <csv>', 'output CSV of the clips')
      .option('--threshold <x>', 'scene-detection threshold', num('threshold'))
      .option('--min-scene-len <n>', 'minimum scene length in frames', int('min-scene-len'))
      .option('--target-fps <n>', 'resample clips to this fps', int('target-fps'))
      .option('--shorter-size <n>', 'resize so the shorter side is n pixels', int('shorter-size'))
      .option('--min-seconds <x>', 'drop clips shorter than this', num('min-seconds'))
      .option('--max-seconds <x>', 'split clips longer than this', num('max-seconds')),
  );
  dataCmd('score', 'score rows (motion, sharpness, or a model-based scorer) into a column; resumable', (c) =>
    c
      .argument('<csv>')
      .addOption(new Option('--scorer <name>', 'scorer').choices(['motion', 'sharpness', 'aesthetic', 'match']).default('motion'))
      .option('--clip <path>', 'CLIP weights for aesthetic/match (safetensors file or folder, Hugging Face key names)')
      .option('--mlp <file>', 'aesthetic MLP weights (safetensors)')
      .option('--tokenizer <file>', 'CLIP tokenizer.json for match (default: beside the CLIP weights)')
      .option('-o, --output <csv>', 'output CSV')
      .option('--workers <n>', 'parallel workers', int('workers')),
  );
  dataCmd('caption', 'caption rows through an OpenAI-compatible vision chat endpoint; resumable', (c) =>
    c
      .argument('<csv>')
      .requiredOption('--endpoint <url>', 'base URL of the endpoint, e.g. http://127.0.0.1:8000/v1')
      .option('--model <name>', 'model name sent to the endpoint')
      .option('--api-key <key>', 'bearer token (default: OPENAI_API_KEY)')
      .option('-o, --output <csv>', 'output CSV')
      .option('--concurrency <n>', 'parallel requests', int('concurrency')),
  );
  dataCmd('merge', 'merge CSVs on path (union), or keep only shared paths with --intersection', (c) =>
    c.argument('<csvs...>').requiredOption('-o, --output <csv>', 'output CSV').option('--intersection', 'keep only paths present in every CSV'),
  );
  dataCmd('split', 'split a CSV into N shards', (c) =>
    c.argument('<csv>').requiredOption('-n, --num <n>', 'number of shards', int('num')).option('--shuffle', 'shuffle first').option('--seed <n>', 'shuffle seed', int('seed')),
  );
  dataCmd('stats', 'counts and histograms of duration, resolution, aspect ratio and caption length (table + PNG)', (c) =>
    c.argument('<csv>').option('--png <file>', 'where to draw the histograms'),
  );
  dataCmd('synth', 'generate a seeded synthetic dataset of clips and images with exact captions', (c) =>
    c
      .requiredOption('--out <dir>', 'output folder')
      .option('--videos <n>', 'number of clips', int('videos'))
      .option('--images <n>', 'number of images', int('images'))
      .option('--colors <names...>', 'restrict the colours (default: all of red green blue yellow purple orange white black cyan pink)')
      .option('--shapes <names...>', 'restrict the shapes (default: circle square triangle diamond)')
      .option('--directions <names...>', 'restrict the motion directions (default: left right up down)')
      .option('--lengths <frames...>', 'frame counts to draw each clip from (default: 8 12 16 24)')
      .option('--fps <rates...>', 'frame rates to draw each clip from (default: 8 12 24 30)')
      .option('--sizes <HxW...>', 'frame sizes (height x width, even, at least 8) to draw clips and images from (default: 32x32 32x48 48x32 36x64 64x64)')
      .option('--cut-fraction <f>', 'fraction of clips with a hard cut between scenes, 0 to 1 (default 0.25)', num('cut-fraction'))
      .option('--seed <n>', 'seed', int('seed')),
  );

  const bucket = program.command('bucket').description('bucket tools');
  bucket
    .command('stats')
    .description('for a CSV and a bucket config: samples per bucket and steps per epoch (table and PNG heatmap)')
    .argument('<csv>')
    .option('--bucket-config <file>', 'bucket config (JSON/YAML/TS); default: the --preset one')
    .option('--preset <name>', 'take the bucket config of a training preset', 'stage2')
    .option('--frame-interval <n>', 'frame interval', int('frame-interval'))
    .option('--seed <n>', 'seed for the keep-probability draws', int('seed'))
    .option('--num-replicas <n>', 'data-parallel ranks', int('num-replicas'))
    .option('--png <file>', 'write a heatmap PNG')
    .action(async (csv: string, opts: Record<string, unknown>) => {
      const { runBucketStats } = await import('./commands/bucket.js');
      await runBucketStats(csv, opts, program.opts(), io);
    });

  return program;
}

/** Runs the CLI; resolves to the exit code. Never throws. */
export async function runCli(argv: string[], io: CliIO = defaultIO): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return process.exitCode === EXIT.INTERRUPTED ? EXIT.INTERRUPTED : EXIT.OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version exit through here with code 0.
      if (e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return EXIT.OK;
      return EXIT.USAGE; // commander already printed the one-line error
    }
    const { message, exitCode } = describeFailure(e);
    io.stderr(`opensora: error: ${message}\n`);
    if (process.env.OPENSORA_DEBUG && e instanceof Error) io.stderr(`${e.stack}\n`);
    return exitCode;
  }
}
