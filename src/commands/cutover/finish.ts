import {makeCutoverCommand} from '../../cli/cutover-commands.js'

export default makeCutoverCommand('finish')
