import {CutoverStatusCommand} from '../../cli/cutover-commands.js'

export default CutoverStatusCommand
