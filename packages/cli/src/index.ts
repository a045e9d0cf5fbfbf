export { buildProgram, runCli, type CliIO } from './program.js';
export { EXIT, UsageError, describeFailure } from './errors.js';
export { runDoctor, formatDoctor, type DoctorReport } from './commands/doctor.js';
